-- 0007: the workflow list's id-prefix filter (LIKE 'prefix%', the console's and
-- ListWorkflows(id_prefix)) and its counts by status use this index under any collation;
-- without it they walk the created_at index (1M workflows: 182 -> 11.5 ms, tests/bench/console.py).
-- Keyed on id alone, which never changes: workflow updates stay HOT.
CREATE INDEX durable_workflow_instances_id_prefix_idx
    ON durable_workflow_instances (id text_pattern_ops);
