-- Concurrency keys and rate limits: the claim's gated paths (durable.controlplane.store.gates).

-- name: keyed_types
-- Which of the activity types $1 and workflow types $2 have keyed tasks waiting (probes of the
-- keyed claim index).
SELECT 'activity' AS kind, t AS type FROM unnest($1::text[]) AS t
WHERE EXISTS (
    SELECT 1 FROM durable_task_queue q
    WHERE q.status = 'pending' AND q.concurrency_key IS NOT NULL AND q.kind = 'activity' AND q.activity_type = t
)
UNION ALL
SELECT 'workflow', t FROM unnest($2::text[]) AS t
WHERE EXISTS (
    SELECT 1 FROM durable_task_queue q
    WHERE q.status = 'pending' AND q.concurrency_key IS NOT NULL AND q.kind = 'workflow' AND q.activity_type = t
);

-- name: lock_keys_after
-- Up to $4 distinct concurrency keys with pending tasks of kind $1 and type $2, in key order
-- after $3, and of those the ones this transaction now holds. Finding them is a loose index
-- scan of the keyed claim index (one probe per key), so the claim walks the keys round robin
-- whatever the number of tasks each one has waiting. Holding one is a transaction-scoped
-- advisory lock in the namespace $5 (activity keys 1685418593 = 'dura', workflow keys
-- 1685418615 = 'durw'), taken without waiting: a key another claimer holds is passed over.
-- The LIMIT applies before the locks are tried (a subquery with a LIMIT is not flattened).
-- Returns every key found, with `held`.
WITH RECURSIVE k AS (
    (SELECT q.concurrency_key AS key FROM durable_task_queue q
     WHERE q.status = 'pending' AND q.concurrency_key IS NOT NULL AND q.kind = $1 AND q.activity_type = $2
       AND q.concurrency_key > $3
     ORDER BY q.concurrency_key LIMIT 1)
    UNION ALL
    SELECT (SELECT q.concurrency_key FROM durable_task_queue q
            WHERE q.status = 'pending' AND q.concurrency_key IS NOT NULL AND q.kind = $1 AND q.activity_type = $2
              AND q.concurrency_key > k.key
            ORDER BY q.concurrency_key LIMIT 1)
    FROM k WHERE k.key IS NOT NULL
),
found AS (
    SELECT key, row_number() OVER () AS n FROM (SELECT key FROM k WHERE key IS NOT NULL LIMIT $4) AS f
)
SELECT key, pg_try_advisory_xact_lock($5, hashtext(key)) AS held FROM found ORDER BY n;

-- name: claim_keyed
-- Claim pending tasks of kind $3 and type $4 for worker $1 from the keys $2 (locked by
-- lock_keys, in an earlier statement: this one's snapshot sees every claim committed before
-- the locks were taken). Each key hands out at most its limit (that of the task at the head
-- of its queue) less its claimed tasks, of any type; at most $6 in all, highest priority first,
-- then one per key in turn.
WITH slots AS (
    SELECT k.key,
           h.concurrency_limit - (
               SELECT count(*) FROM durable_task_queue r
               WHERE r.status = 'claimed' AND r.concurrency_key = k.key
           ) AS free
    FROM unnest($2::text[]) AS k(key)
    CROSS JOIN LATERAL (
        SELECT q.concurrency_limit FROM durable_task_queue q
        WHERE q.status = 'pending' AND q.concurrency_key = k.key AND q.kind = $3 AND q.activity_type = $4
          AND q.visible_at <= $5
        ORDER BY q.priority DESC, q.visible_at
        LIMIT 1
    ) h
),
taken AS (
    SELECT c.id, c.priority, c.visible_at,
           row_number() OVER (PARTITION BY s.key ORDER BY c.priority DESC, c.visible_at) AS turn
    FROM slots s
    CROSS JOIN LATERAL (
        SELECT q.id, q.priority, q.visible_at FROM durable_task_queue q
        WHERE q.status = 'pending' AND q.concurrency_key = s.key AND q.kind = $3 AND q.activity_type = $4
          AND q.visible_at <= $5
        ORDER BY q.priority DESC, q.visible_at
        LIMIT LEAST(GREATEST(s.free, 0), $6)
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE s.free > 0 AND EXISTS (SELECT 1 FROM durable_workers WHERE id = $1 AND status = 'active')
),
-- round robin: each key's first task, then each key's second, ...; a higher priority first
next AS (
    SELECT id FROM taken ORDER BY priority DESC, turn, visible_at LIMIT $6
)
UPDATE durable_task_queue t
SET status = 'claimed', claimed_by = $1, claimed_at = $5, heartbeat_at = $5, attempt = t.attempt + 1
FROM next
WHERE t.id = next.id
RETURNING t.id, t.kind, t.workflow_id, t.activity_id, t.activity_type, t.input, t.attempt, t.max_attempts,
    t.priority, t.visible_at, t.claimed_by, t.heartbeat_timeout, t.start_to_close_timeout,
    t.heartbeat_details, t.trace_id, t.span_id;

-- name: lock_rate_limit
-- The bucket of type $1, refilled to $2 (a claimer holding it is passed over: it hands out
-- the tokens there are).
SELECT key, rate, burst,
       LEAST(burst, tokens + rate * GREATEST(extract(epoch FROM $2::timestamptz - updated_at), 0)) AS tokens
FROM durable_rate_limits WHERE key = $1
FOR UPDATE SKIP LOCKED;

-- name: spend_tokens
-- The bucket's clock never goes back: a claimer whose `now` was read before the last holder's
-- (it waited its turn) refilled nothing (lock_rate_limit) and must not count that time again.
UPDATE durable_rate_limits SET tokens = $2, updated_at = GREATEST(updated_at, $3) WHERE key = $1;

-- name: set_rate_limit
-- Create or retune the limit of type $1; a new bucket starts full, a retuned one keeps its
-- tokens (at most the new burst).
INSERT INTO durable_rate_limits AS r (key, rate, burst, tokens, updated_at, created_at)
VALUES ($1, $2, $3, $3, $4, $4)
ON CONFLICT (key) DO UPDATE
SET rate = EXCLUDED.rate, burst = EXCLUDED.burst,
    tokens = LEAST(EXCLUDED.burst,
                   r.tokens + r.rate * GREATEST(extract(epoch FROM EXCLUDED.updated_at - r.updated_at), 0)),
    updated_at = EXCLUDED.updated_at
RETURNING key, rate, burst, tokens, updated_at;

-- name: delete_rate_limit
DELETE FROM durable_rate_limits WHERE key = $1 RETURNING key;

-- name: list_rate_limits
-- Every limit with its tokens now ($1), its waiting (visible) and its claimed tasks.
SELECT r.key, r.rate, r.burst,
       LEAST(r.burst, r.tokens + r.rate * GREATEST(extract(epoch FROM $1::timestamptz - r.updated_at), 0)) AS tokens,
       (SELECT count(*) FROM durable_task_queue q
        WHERE q.status = 'pending' AND q.concurrency_key IS NULL AND q.kind = 'activity'
          AND q.activity_type = r.key AND q.visible_at <= $1)
     + (SELECT count(*) FROM durable_task_queue q
        WHERE q.status = 'pending' AND q.concurrency_key IS NOT NULL AND q.kind = 'activity'
          AND q.activity_type = r.key AND q.visible_at <= $1) AS pending,
       (SELECT count(*) FROM durable_task_queue q
        WHERE q.status = 'claimed' AND q.kind = 'activity' AND q.activity_type = r.key) AS running
FROM durable_rate_limits r
ORDER BY r.key;

-- name: busiest_keys
-- The concurrency keys with the most tasks claimed now (up to $1 of them).
SELECT concurrency_key AS key, count(*) AS running, max(concurrency_limit) AS concurrency_limit
FROM durable_task_queue
WHERE status = 'claimed' AND concurrency_key IS NOT NULL
GROUP BY concurrency_key
ORDER BY count(*) DESC, concurrency_key
LIMIT $1;

-- name: claim_keyed_workflows
-- claim_keyed for the first decision tasks of keyed workflows: a key's count is its running
-- workflows. The candidates' workflow rows are locked with their tasks (SKIP LOCKED: never a
-- wait, so no lock-order deadlock with the write paths, which lock the workflow first), and the
-- same statement starts the workflows and takes the key off their tasks.
WITH slots AS (
    SELECT k.key,
           h.concurrency_limit - (
               SELECT count(*) FROM durable_workflow_instances r
               WHERE r.status = 'running' AND r.concurrency_key = k.key
           ) AS free
    FROM unnest($2::text[]) AS k(key)
    CROSS JOIN LATERAL (
        SELECT q.concurrency_limit FROM durable_task_queue q
        WHERE q.status = 'pending' AND q.concurrency_key = k.key AND q.kind = 'workflow' AND q.activity_type = $3
          AND q.visible_at <= $4
        ORDER BY q.priority DESC, q.visible_at
        LIMIT 1
    ) h
),
taken AS (
    SELECT c.id, c.workflow_id, c.priority, c.visible_at,
           row_number() OVER (PARTITION BY s.key ORDER BY c.priority DESC, c.visible_at) AS turn
    FROM slots s
    CROSS JOIN LATERAL (
        SELECT q.id, q.workflow_id, q.priority, q.visible_at
        FROM durable_task_queue q JOIN durable_workflow_instances w ON w.id = q.workflow_id
        WHERE q.status = 'pending' AND q.concurrency_key = s.key AND q.kind = 'workflow' AND q.activity_type = $3
          AND q.visible_at <= $4 AND w.status = 'pending'
        ORDER BY q.priority DESC, q.visible_at
        LIMIT LEAST(GREATEST(s.free, 0), $5)
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE s.free > 0 AND EXISTS (SELECT 1 FROM durable_workers WHERE id = $1 AND status = 'active')
),
next AS (
    SELECT id, workflow_id FROM taken ORDER BY priority DESC, turn, visible_at LIMIT $5
),
started AS (
    UPDATE durable_workflow_instances w
    SET status = 'running', started_at = COALESCE(w.started_at, $4), updated_at = $4
    FROM next WHERE w.id = next.workflow_id AND w.status = 'pending'
)
UPDATE durable_task_queue t
SET status = 'claimed', claimed_by = $1, claimed_at = $4, heartbeat_at = $4, attempt = t.attempt + 1,
    concurrency_key = NULL, concurrency_limit = NULL
FROM next
WHERE t.id = next.id
RETURNING t.id, t.kind, t.workflow_id, t.activity_id, t.activity_type, t.input, t.attempt, t.max_attempts,
    t.priority, t.visible_at, t.claimed_by, t.heartbeat_timeout, t.start_to_close_timeout,
    t.heartbeat_details, t.trace_id, t.span_id;

-- name: insert_keyed_decision
-- The first decision task of a keyed workflow: it carries the workflow's key and limit.
INSERT INTO durable_task_queue (kind, workflow_id, activity_type, visible_at, created_at, max_attempts,
    trace_id, span_id, concurrency_key, concurrency_limit)
VALUES ('workflow', $1, $2, $3, $3, $4, $5, $6, $7, $8);
