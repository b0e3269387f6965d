-- 0011: idempotency keys of EnqueueActivity. A key names the first task enqueued with it;
-- the same key again within DURABLE_IDEMPOTENCY_WINDOW returns that task instead of a new
-- one. The primary key serialises concurrent enqueues of one key (the second waits for the
-- first's commit, then finds its row). Unkeyed enqueues never touch this table.
CREATE TABLE durable_idempotency_keys (
    key           text        PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    -- the task the key was first used for; a task deleted (retention, dlq delete) takes
    -- its key with it. Deferred: the key row is written before its task, in one transaction.
    task_id       uuid        NOT NULL REFERENCES durable_task_queue (id) ON DELETE CASCADE
                              DEFERRABLE INITIALLY DEFERRED,
    activity_type text        NOT NULL CHECK (length(activity_type) BETWEEN 1 AND 255),
    created_at    timestamptz NOT NULL
);
-- Retention deletes keys older than the window, oldest first.
CREATE INDEX durable_idempotency_keys_created_idx ON durable_idempotency_keys (created_at);
-- Deleting a task finds its key without a scan (the foreign key's cascade).
CREATE INDEX durable_idempotency_keys_task_idx ON durable_idempotency_keys (task_id);
