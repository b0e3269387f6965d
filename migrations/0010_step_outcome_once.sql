-- 0010: a workflow step records one
-- outcome. A step of a running workflow could end up with
-- both ActivityFailed and ActivityCompleted (or two of either): its dead task was requeued from
-- the dead-letter queue after the workflow had seen the failure, and the requeued run wrote
-- its own outcome too. The store now keeps the step's first outcome in the history (a later
-- one stays on its task), and this index makes a second one impossible.
--
-- Histories written before this migration may hold such pairs: the later ones are renamed
-- ActivityOutcomeIgnored (their data kept as it was), which neither runtime delivers; both
-- already acted on the first outcome only, or on both, which is the defect.
--
-- The index is built in this migration's transaction, which blocks writes to the events
-- while it builds: with a large history table, upgrade at a quiet moment.
UPDATE durable_workflow_events e
SET event_type = 'ActivityOutcomeIgnored'
FROM (
    SELECT id, row_number() OVER (
        PARTITION BY workflow_id, event_data->>'activity_id' ORDER BY sequence_num) AS nth
    FROM durable_workflow_events
    WHERE event_type IN ('ActivityCompleted', 'ActivityFailed')
) later
WHERE e.id = later.id AND later.nth > 1;

CREATE UNIQUE INDEX durable_workflow_events_step_outcome_idx
    ON durable_workflow_events (workflow_id, (event_data->>'activity_id'))
    WHERE event_type IN ('ActivityCompleted', 'ActivityFailed');
