-- Idempotency keys of EnqueueActivity (idempotency.py). Named queries, loaded by queries.py.

-- name: take_idempotency_key
-- The key for task $2, unless a key younger than $5 holds it: then no row. A key older than
-- the window is taken over. A concurrent enqueue of the same key waits here for the other's
-- commit (the primary key), then sees its row.
INSERT INTO durable_idempotency_keys AS k (key, task_id, activity_type, created_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (key) DO UPDATE
    SET task_id = EXCLUDED.task_id, activity_type = EXCLUDED.activity_type, created_at = EXCLUDED.created_at
    WHERE k.created_at < $5
RETURNING task_id;

-- name: get_idempotency_key
SELECT task_id, activity_type, created_at FROM durable_idempotency_keys WHERE key = $1;

-- name: insert_keyed_task
-- insert_task with the id chosen by the caller (the key row already names it).
INSERT INTO durable_task_queue (
    id, kind, workflow_id, activity_id, activity_type, input, priority, visible_at, max_attempts,
    retry_policy, schedule_to_start_timeout, start_to_close_timeout, heartbeat_timeout, created_at,
    trace_id, span_id, concurrency_key, concurrency_limit)
VALUES ($1, 'activity', NULL, NULL, $2, $3::jsonb, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14, $15)
RETURNING id;

-- name: delete_expired_idempotency_keys
-- Retention: up to $2 keys created before $1 (the window's start), oldest first.
WITH doomed AS (
    SELECT key FROM durable_idempotency_keys
    WHERE created_at < $1
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM durable_idempotency_keys k USING doomed WHERE k.key = doomed.key
    RETURNING 1
)
SELECT count(*) FROM gone;
