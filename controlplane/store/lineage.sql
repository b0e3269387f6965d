-- Named queries of child workflows, continue-as-new and history limits (lineage.py).

-- name: set_workflow_parent
UPDATE durable_workflow_instances SET parent_workflow_id = $2, parent_close_policy = $3 WHERE id = $1;

-- name: children_to_cancel
-- Children of the workflows $1 whose policy is to be cancelled with their parent, not ended or
-- asked yet, started by then ($2).
SELECT id, parent_workflow_id FROM durable_workflow_instances
WHERE parent_workflow_id = ANY($1::text[]) AND parent_close_policy = 'cancel' AND status IN ('pending', 'running')
  AND cancel_requested_at IS NULL AND created_at <= $2
ORDER BY created_at, id
LIMIT 1000;

-- name: orphaned_children
-- The reaper's sweep: children to be cancelled whose parent ended (the parent's own
-- transaction asks them right after it commits; this catches a control plane that stopped
-- in between) or is gone.
SELECT c.id FROM durable_workflow_instances c
LEFT JOIN durable_workflow_instances p ON p.id = c.parent_workflow_id
WHERE c.parent_workflow_id IS NOT NULL AND c.parent_close_policy = 'cancel'
  AND c.status IN ('pending', 'running') AND c.cancel_requested_at IS NULL
  AND (p.id IS NULL OR p.status IN ('completed', 'failed', 'cancelled'))
LIMIT $1;

-- name: list_children
SELECT * FROM durable_workflow_instances
WHERE parent_workflow_id = $1
ORDER BY created_at, id
LIMIT 1000;

-- name: list_runs
SELECT run_number, status, input, next_input, event_count, started_at, closed_at
FROM durable_workflow_runs
WHERE workflow_id = $1
ORDER BY run_number
LIMIT 1000;

-- name: carried_events
-- What a run that continued as new did not see: the signals and cancel requests recorded
-- after the event its code last handled ($2).
SELECT sequence_num, event_type, event_data
FROM durable_workflow_events
WHERE workflow_id = $1 AND sequence_num > $2 AND event_type IN ('SignalReceived', 'WorkflowCancelRequested')
ORDER BY sequence_num;

-- name: archive_run
-- The closed run into durable_workflow_runs, with its events as a JSON array.
INSERT INTO durable_workflow_runs (
    workflow_id, run_number, workflow_type, input, next_input, events, event_count, history_bytes, started_at, closed_at)
SELECT w.id, w.run_number, w.workflow_type, w.input, $2::jsonb,
    COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
            'sequence_num', e.sequence_num, 'event_type', e.event_type, 'data', e.event_data,
            'created_at', e.created_at) ORDER BY e.sequence_num)
        FROM durable_workflow_events e WHERE e.workflow_id = w.id), '[]'::jsonb),
    w.last_event_seq, w.history_bytes, w.started_at, $3
FROM durable_workflow_instances w WHERE w.id = $1;

-- name: delete_run_events
DELETE FROM durable_workflow_events WHERE workflow_id = $1;

-- name: delete_run_steps
-- The closed run's finished activities and timers (their ids are free for the next run);
-- one a dead-letter entry names stays.
DELETE FROM durable_task_queue t
WHERE t.workflow_id = $1 AND t.kind IN ('activity', 'timer') AND t.status = 'completed'
  AND NOT EXISTS (SELECT 1 FROM durable_dead_letter_queue d WHERE d.original_task_id = t.id);

-- name: start_next_run
-- The row starts over: running, input $2, an empty history, the next run number. A cancel
-- request the closed run did not see ($4) stays asked.
UPDATE durable_workflow_instances
SET input = $2::jsonb, result = NULL, error = NULL, last_event_seq = 0, decided_through_seq = 0,
    status = 'running', run_number = run_number + 1, history_bytes = 0, history_warned = false,
    decision_seen_seq = NULL, sticky_worker_id = NULL,
    started_at = $3, updated_at = $3, blocked = NULL,
    cancel_requested_at = CASE WHEN $4::boolean THEN cancel_requested_at ELSE NULL END
WHERE id = $1;

-- name: move_signal_to_run
-- A signal carried to the new run: the newest row of that sequence number is this run's.
UPDATE durable_signals SET sequence_num = $3, delivered_at = NULL
WHERE id = (SELECT max(id) FROM durable_signals WHERE workflow_id = $1 AND sequence_num = $2);

-- name: mark_history_warned
UPDATE durable_workflow_instances SET history_warned = true WHERE id = $1;
