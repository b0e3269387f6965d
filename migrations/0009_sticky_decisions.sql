-- Sticky decisions: a workflow's next decision goes to the worker that holds the workflow's
-- instance in memory (it decided last and said it keeps the instance), so that worker is sent
-- only the events after its cached point instead of the whole history, and replays nothing.
--
-- durable_workflow_instances.sticky_worker_id: the worker that applied the last decision and
-- keeps the instance (NULL: none). A decision task queued while that worker is active carries
-- it in durable_task_queue.sticky_to: only that worker claims it, through its own index. When
-- nobody has claimed it within the schedule-to-start fallback (DURABLE_STICKY_FALLBACK_SECONDS,
-- the worker was killed or is busy), the control plane clears sticky_to and any worker of the
-- type takes it, with the full history. A task handed back or taken back loses its stickiness.

ALTER TABLE durable_workflow_instances ADD COLUMN sticky_worker_id text;
-- The last event the last applied decision saw (NULL: decided before 0009; decided_through_seq
-- tells then). A decision may be applied though events arrived after what it saw (its commands
-- go after them, and those events start the next decision): decided_through_seq stays the
-- last event the decisions account for, their own included, and this one is what replay needs
-- (commands issued while handling events up to it were all recorded) and where the instance
-- of the worker that keeps it stands.
ALTER TABLE durable_workflow_instances ADD COLUMN decision_seen_seq integer;
ALTER TABLE durable_task_queue ADD COLUMN sticky_to text;

-- A worker's own pending decisions, in claim order (small: claimed within milliseconds).
CREATE INDEX durable_task_queue_sticky_idx
    ON durable_task_queue (sticky_to, priority DESC, visible_at)
    WHERE status = 'pending' AND sticky_to IS NOT NULL;

-- One decision at a time per workflow: a workflow has at most one decision task pending or
-- claimed (it had at most one pending). The events that arrive while its decision is made
-- queue no second one (it would be computed on a history the first is about to extend, and
-- dropped); the decision's end queues the next when events arrived after what it saw. A
-- pending decision already queued beside a claimed one is superseded first (the claimed one's
-- end queues what it did not see).
UPDATE durable_task_queue p SET status = 'cancelled', completed_at = now()
WHERE p.kind = 'workflow' AND p.status = 'pending' AND EXISTS (
    SELECT 1 FROM durable_task_queue c WHERE c.workflow_id = p.workflow_id AND c.kind = 'workflow' AND c.status = 'claimed');
CREATE UNIQUE INDEX durable_task_queue_one_decision_idx
    ON durable_task_queue (workflow_id) WHERE kind = 'workflow' AND status IN ('pending', 'claimed');
DROP INDEX durable_task_queue_one_pending_decision_idx;

-- Push dispatch: a sticky decision wakes the claims of its worker ("sticky:<worker id>=n"),
-- not every claim of its workflow type.
CREATE OR REPLACE FUNCTION durable_notify_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    types text;
BEGIN
    SELECT string_agg(item, ',') INTO types
    FROM (
        SELECT kind || ':' || activity_type || '=' || count(*) AS item
        FROM inserted
        WHERE status = 'pending' AND sticky_to IS NULL AND visible_at <= now() + interval '5 milliseconds'
        GROUP BY kind, activity_type
        UNION ALL
        SELECT 'sticky:' || sticky_to || '=' || count(*)
        FROM inserted
        WHERE status = 'pending' AND sticky_to IS NOT NULL AND visible_at <= now() + interval '5 milliseconds'
        GROUP BY sticky_to
        UNION ALL
        SELECT kind || ':' || activity_type || '=' || count(*) || '@' || extract(epoch FROM visible_at)
        FROM inserted WHERE status = 'pending' AND visible_at > now() + interval '5 milliseconds'
        GROUP BY kind, activity_type, visible_at
    ) AS arrived;
    IF types IS NOT NULL THEN
        PERFORM pg_notify('durable_tasks', left(types, 7900));
    END IF;
    RETURN NULL;
END;
$$;
