-- Proposed migration 0006 (not on the console branch: the migrator refuses a gap before 0003-0005 land).
-- The workflow list's id-prefix filter (LIKE 'prefix%') and its counts by status use it under any collation;
-- without it they walk the created_at index. Measured by tests/bench/console.py --sql (see its docstring).
CREATE INDEX durable_workflow_instances_id_prefix_idx
    ON durable_workflow_instances (id text_pattern_ops);
