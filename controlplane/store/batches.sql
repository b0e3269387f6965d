-- Batched enqueues and starts (batches.py): many items, one statement. Named queries, loaded by queries.py.

-- name: insert_standalone_tasks
-- Standalone activities, one row per element of the arrays (all the same length; ids chosen
-- by the caller, so nothing depends on the order RETURNING would keep). The trigger's NOTIFY
-- goes out once for the whole statement. A new column is one line in each of the three lists.
INSERT INTO durable_task_queue (
    kind, created_at,
    id,
    activity_type,
    input,
    priority,
    visible_at,
    max_attempts,
    retry_policy,
    schedule_to_start_timeout,
    start_to_close_timeout,
    heartbeat_timeout,
    trace_id,
    span_id)
SELECT
    'activity', $1,
    t.id,
    t.activity_type,
    t.input::jsonb,
    t.priority,
    t.visible_at,
    t.max_attempts,
    t.retry_policy::jsonb,
    t.schedule_to_start_timeout,
    t.start_to_close_timeout,
    t.heartbeat_timeout,
    t.trace_id,
    t.span_id
FROM unnest(
    $2::uuid[],
    $3::text[],
    $4::text[],
    $5::int[],
    $6::timestamptz[],
    $7::int[],
    $8::text[],
    $9::float8[],
    $10::float8[],
    $11::float8[],
    $12::text[],
    $13::text[]
) AS t(
    id,
    activity_type,
    input,
    priority,
    visible_at,
    max_attempts,
    retry_policy,
    schedule_to_start_timeout,
    start_to_close_timeout,
    heartbeat_timeout,
    trace_id,
    span_id);

-- name: insert_started_workflows
-- Workflows with their WorkflowStarted event ($4, as JSON text) and their first decision, in
-- one statement; ids that exist are skipped (no event, no task) and do not come back. The
-- caller passes each id once. Events and tasks reference rows of the same statement: the
-- foreign keys are checked at its end. history_bytes counts the event's data, as appending it
-- does on the single path.
WITH created AS (
    INSERT INTO durable_workflow_instances (
        id, workflow_type, input, created_at, updated_at, last_event_seq, trace_id, span_id, history_bytes)
    SELECT w.id, w.workflow_type, w.input::jsonb, $1, $1, 1, w.trace_id, w.span_id, octet_length(w.data)
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
        AS w(id, workflow_type, input, trace_id, span_id, data)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, workflow_type, trace_id, span_id
), started AS (
    INSERT INTO durable_workflow_events (workflow_id, sequence_num, event_type, event_data, created_at)
    SELECT c.id, 1, 'WorkflowStarted', e.data::jsonb, $1
    FROM created c JOIN unnest($2::text[], $7::text[]) AS e(id, data) ON e.id = c.id
), decided AS (
    INSERT INTO durable_task_queue (kind, workflow_id, activity_type, visible_at, created_at, max_attempts, trace_id, span_id)
    SELECT 'workflow', c.id, c.workflow_type, $1, $1, $8, c.trace_id, c.span_id
    FROM created c
)
SELECT id FROM created;

-- name: workflow_types_of
SELECT id, workflow_type FROM durable_workflow_instances WHERE id = ANY($1::text[]);
