-- 0004: queries. A query is answered by a worker of the workflow's type from the replayed
-- state of its history; it writes nothing to the history. A row lives only while its
-- caller waits (deleted on the answer or at its deadline; the reaper sweeps what a control
-- plane that stopped mid-wait left behind).
CREATE TABLE durable_workflow_queries (
    id            uuid        PRIMARY KEY,
    workflow_id   text        NOT NULL REFERENCES durable_workflow_instances (id) ON DELETE CASCADE,
    workflow_type text        NOT NULL CHECK (length(workflow_type) BETWEEN 1 AND 255),
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    arg           jsonb,
    status        text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'claimed', 'answered', 'failed')),
    claimed_by    text,
    claimed_at    timestamptz,
    result        jsonb,
    error         jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    deadline_at   timestamptz NOT NULL,
    answered_at   timestamptz
);
CREATE INDEX durable_workflow_queries_pending_idx
    ON durable_workflow_queries (workflow_type, created_at) WHERE status = 'pending';
CREATE INDEX durable_workflow_queries_deadline_idx ON durable_workflow_queries (deadline_at);
CREATE INDEX durable_workflow_queries_workflow_idx ON durable_workflow_queries (workflow_id);
