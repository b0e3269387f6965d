-- Schedules (durable_schedules, migration 0005_schedules). Loaded with queries.sql by queries.py.

-- name: insert_schedule
INSERT INTO durable_schedules (
    id, action, target_type, input, cron, interval_seconds, time_zone, overlap_policy,
    catchup_window_seconds, jitter_seconds, start_at, end_at, paused, note,
    next_tick, next_fire_at, wake_at, created_at, updated_at)
VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17, $17)
ON CONFLICT (id) DO NOTHING
RETURNING *;

-- name: get_schedule
SELECT * FROM durable_schedules WHERE id = $1;

-- name: lock_schedule
SELECT * FROM durable_schedules WHERE id = $1 FOR UPDATE;

-- name: list_schedules
-- A page in id order after $2 ('' = from the start), optionally ids starting with $1.
SELECT * FROM durable_schedules
WHERE ($1::text IS NULL OR starts_with(id, $1)) AND id > $2
ORDER BY id
LIMIT $3;

-- name: claim_due_schedule
-- The loop's claim: one due schedule, locked for this short transaction; a row another
-- replica holds is skipped, not waited for.
SELECT * FROM durable_schedules
WHERE NOT paused AND wake_at <= $1
ORDER BY wake_at
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: next_schedule_wake
SELECT min(wake_at) FROM durable_schedules WHERE NOT paused AND wake_at IS NOT NULL;

-- name: save_schedule_state
UPDATE durable_schedules
SET next_tick = $2, next_fire_at = $3, wake_at = $4, buffered_tick = $5, last_run_id = $6,
    last_tick = $7, last_fired_at = $8,
    started_count = started_count + $9, skipped_count = skipped_count + $10,
    missed_count = missed_count + $11, existing_count = existing_count + $12,
    recent_fires = $13::jsonb, updated_at = $14
WHERE id = $1
RETURNING *;

-- name: pause_schedule
UPDATE durable_schedules SET paused = true, note = $2, updated_at = $3 WHERE id = $1 RETURNING *;

-- name: resume_schedule
UPDATE durable_schedules
SET paused = false, note = $2, next_tick = $3, next_fire_at = $4,
    wake_at = CASE WHEN buffered_tick IS NULL THEN $4::timestamptz ELSE $5::timestamptz END, updated_at = $5
WHERE id = $1
RETURNING *;

-- name: delete_schedule
DELETE FROM durable_schedules WHERE id = $1 RETURNING id;

-- name: workflow_run_status
SELECT status FROM durable_workflow_instances WHERE id = $1;

-- name: cancel_requested
SELECT cancel_requested_at IS NOT NULL FROM durable_workflow_instances WHERE id = $1;

-- name: activity_run_status
SELECT status FROM durable_task_queue WHERE id = $1::uuid;

-- name: delay_schedule
-- A schedule whose firing failed: looked at again at $2, the error ($3) in its recent fires.
UPDATE durable_schedules
SET wake_at = $2, updated_at = $5,
    recent_fires = (SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb) FROM (
        SELECT e, n FROM jsonb_array_elements(recent_fires || jsonb_build_array($3::jsonb)) WITH ORDINALITY AS a(e, n)
        ORDER BY n DESC LIMIT $4) AS kept)
WHERE id = $1;
