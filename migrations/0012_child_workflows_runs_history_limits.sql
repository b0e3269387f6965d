-- 0012: child workflows, continue-as-new and history limits.
--
-- * A child workflow is a workflow like any other (its own row, its own history) that knows
--   its parent: `parent_workflow_id` (no foreign key: retention may delete a parent before its
--   abandoned child) and what the parent's end does to it, `parent_close_policy`:
--     SELECT id, status FROM durable_workflow_instances WHERE parent_workflow_id = 'order-1';
-- * Continue-as-new keeps the workflow's id and row: the row starts over (status running,
--   the new input, an empty history, `run_number` + 1), and the closed run is archived in
--   durable_workflow_runs with its input, the input it handed on and its events (a JSON array
--   of {sequence_num, event_type, data, created_at}). Runs are deleted with their workflow
--   (ON DELETE CASCADE), so retention keeps deleting old runs with no change.
-- * History limits: `history_bytes` is the size of the current run's event data, kept by the
--   statement that appends events (no sum over the history); `history_warned` is set once the
--   HistorySizeWarning event was written.
ALTER TABLE durable_workflow_instances
    ADD COLUMN parent_workflow_id text CHECK (parent_workflow_id IS NULL OR length(parent_workflow_id) BETWEEN 1 AND 255),
    ADD COLUMN parent_close_policy text CHECK (parent_close_policy IS NULL OR parent_close_policy IN ('cancel', 'abandon')),
    ADD COLUMN run_number integer NOT NULL DEFAULT 1 CHECK (run_number >= 1),
    ADD COLUMN history_bytes bigint NOT NULL DEFAULT 0 CHECK (history_bytes >= 0),
    ADD COLUMN history_warned boolean NOT NULL DEFAULT false;

-- A parent's children (durable workflows show, and cancelling them when the parent ends).
CREATE INDEX durable_workflow_instances_parent_idx
    ON durable_workflow_instances (parent_workflow_id, created_at) WHERE parent_workflow_id IS NOT NULL;

-- The reaper's sweep for children whose parent ended: only the live ones asked to cancel with it.
CREATE INDEX durable_workflow_instances_cancel_with_parent_idx
    ON durable_workflow_instances (parent_workflow_id)
    WHERE parent_close_policy = 'cancel' AND status IN ('pending', 'running') AND cancel_requested_at IS NULL;

CREATE TABLE durable_workflow_runs (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id   text        NOT NULL REFERENCES durable_workflow_instances (id) ON DELETE CASCADE,
    run_number    integer     NOT NULL CHECK (run_number >= 1),
    workflow_type text        NOT NULL,
    status        text        NOT NULL DEFAULT 'continued_as_new' CHECK (status IN ('continued_as_new')),
    input         jsonb,
    next_input    jsonb,
    events        jsonb       NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(events) = 'array'),
    event_count   integer     NOT NULL DEFAULT 0,
    history_bytes bigint      NOT NULL DEFAULT 0,
    started_at    timestamptz,
    closed_at     timestamptz NOT NULL,
    UNIQUE (workflow_id, run_number)
);
