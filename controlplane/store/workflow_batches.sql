-- Batched workflow writes (workflow_batches.py): many workflows' step outcomes and decisions in
-- a few statements. Named queries, loaded by queries.py.

-- name: lock_workflows_of_tasks
-- The lock order of every write path, for a batch: the workflows of tasks $1, locked in id
-- order (two batches that share workflows cannot deadlock). Runs as its own statement so the
-- next one's snapshot sees what the transactions it waited for wrote.
SELECT w.id, w.status FROM durable_workflow_instances w
WHERE w.id IN (SELECT workflow_id FROM durable_task_queue WHERE id = ANY($1::uuid[]) AND workflow_id IS NOT NULL)
ORDER BY w.id
FOR UPDATE OF w;

-- name: complete_workflow_activities
-- Activities of workflows (locked by the caller) still held by worker $1 and their attempt,
-- completed in one statement: each task's result ($5, JSON text) on its row, an
-- ActivityCompleted event per completed step of a running workflow whose history has no
-- outcome of that step yet (numbered after the history, in the batch's order), and one decision
-- queued per workflow unless one waits or is being made (routed to the worker that keeps the
-- instance while it is active). Rows that come back completed; the caller finds out why the
-- others did not.
WITH done AS (
    UPDATE durable_task_queue t
    SET status = 'completed', result = c.result::jsonb, completed_at = $2
    FROM unnest($3::uuid[], $4::int[], $5::text[]) WITH ORDINALITY AS c(id, attempt, result, ord)
    WHERE t.id = c.id AND t.status || '' = 'claimed' AND t.claimed_by = $1 AND t.attempt = c.attempt
      AND t.kind = 'activity' AND t.workflow_id IS NOT NULL
    RETURNING t.id, t.workflow_id, t.activity_id, t.activity_type, t.attempt, c.ord,
        jsonb_build_object(
            'activity_id', t.activity_id, 'activity_type', t.activity_type,
            'result', CASE WHEN jsonb_typeof(c.result::jsonb) = 'null' THEN '{}'::jsonb ELSE c.result::jsonb END,
            'attempt', t.attempt) AS event_data,
        EXISTS (
            SELECT 1 FROM durable_workflow_events e
            WHERE e.workflow_id = t.workflow_id AND e.event_type IN ('ActivityCompleted', 'ActivityFailed')
              AND e.event_data->>'activity_id' = t.activity_id
        ) AS outcome_recorded
), outcomes AS (
    SELECT d.*, row_number() OVER (PARTITION BY d.workflow_id ORDER BY d.ord) AS n
    FROM done d JOIN durable_workflow_instances w ON w.id = d.workflow_id
    WHERE NOT d.outcome_recorded AND w.status NOT IN ('completed', 'failed', 'cancelled')
), counted AS (
    SELECT workflow_id, count(*) AS n, sum(octet_length(event_data::text)) AS bytes
    FROM outcomes GROUP BY workflow_id
), advanced AS (
    UPDATE durable_workflow_instances w
    SET last_event_seq = w.last_event_seq + c.n, updated_at = $2, history_bytes = w.history_bytes + c.bytes
    FROM counted c WHERE w.id = c.workflow_id
    RETURNING w.id, w.workflow_type, w.last_event_seq - c.n AS after_seq, w.trace_id, w.span_id, w.sticky_worker_id
), appended AS (
    INSERT INTO durable_workflow_events (workflow_id, sequence_num, event_type, event_data, created_at)
    SELECT o.workflow_id, a.after_seq + o.n, 'ActivityCompleted', o.event_data, $2
    FROM outcomes o JOIN advanced a ON a.id = o.workflow_id
), woken AS (
    INSERT INTO durable_task_queue (kind, workflow_id, activity_type, visible_at, created_at, max_attempts, trace_id, span_id, sticky_to)
    SELECT 'workflow', a.id, a.workflow_type, $2, $2, $6, a.trace_id, a.span_id,
           (SELECT k.id FROM durable_workers k WHERE k.id = a.sticky_worker_id AND k.status = 'active')
    FROM advanced a
    ON CONFLICT (workflow_id) WHERE kind = 'workflow' AND status IN ('pending', 'claimed') DO NOTHING
)
SELECT id, activity_type FROM done;

-- name: lock_workflows_of_decisions
-- The workflows of decision tasks $1, locked in id order (every batch's lock order), each
-- with the task it was found by. A task of no workflow, or of one that is gone, has no row.
SELECT t.id AS decision_task_id, w.*
FROM durable_task_queue t JOIN durable_workflow_instances w ON w.id = t.workflow_id
WHERE t.id = ANY($1::uuid[])
ORDER BY w.id
FOR UPDATE OF w;
