-- 0003: what the async workflow runtime needs of the tables.
--
-- * A workflow whose decisions fail (a bug in its code, a non-determinism) is not failed: it
--   stays running and `blocked` holds the error until a decision succeeds again:
--     SELECT id, workflow_type, blocked->>'type', blocked->>'message'
--     FROM durable_workflow_instances WHERE blocked IS NOT NULL;
-- * Cancelling asks the workflow's code to stop (its finally blocks and compensations run):
--   `cancel_requested_at` is when it was asked; the status turns `cancelled` when it stops.
-- * Payloads are any JSON value (the SDK converts pydantic models and dataclasses), not only
--   objects: the object-only checks on inputs, results and signal payloads go.
ALTER TABLE durable_workflow_instances
    ADD COLUMN blocked jsonb CHECK (blocked IS NULL OR jsonb_typeof(blocked) = 'object'),
    ADD COLUMN cancel_requested_at timestamptz;

-- Keyed on id, not a column every update changes: updates of unblocked workflows stay HOT.
CREATE INDEX durable_workflow_instances_blocked_idx
    ON durable_workflow_instances (id) WHERE blocked IS NOT NULL;

ALTER TABLE durable_workflow_instances DROP CONSTRAINT IF EXISTS durable_workflow_instances_input_check;
ALTER TABLE durable_workflow_instances DROP CONSTRAINT IF EXISTS durable_workflow_instances_result_check;
ALTER TABLE durable_task_queue DROP CONSTRAINT IF EXISTS durable_task_queue_input_check;
ALTER TABLE durable_signals DROP CONSTRAINT IF EXISTS durable_signals_payload_check;
