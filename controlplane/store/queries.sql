-- Named queries of the durable store. Only durable.controlplane.store knows these names.
-- Every query that depends on the current time takes it as a parameter, so tests can move it.

-- name: insert_workflow
INSERT INTO durable_workflow_instances (id, workflow_type, input, created_at, updated_at, trace_id, span_id,
    concurrency_key, concurrency_limit)
VALUES ($1, $2, $3::jsonb, $4, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: get_workflow
SELECT * FROM durable_workflow_instances WHERE id = $1;

-- name: lock_workflow
SELECT * FROM durable_workflow_instances WHERE id = $1 FOR UPDATE;

-- name: list_workflows
-- Newest first. One statement per filter combination, each read through the index in its
-- order (a generic plan of "$1 IS NULL OR status = $1" would scan and sort the table).
SELECT * FROM durable_workflow_instances
ORDER BY created_at DESC, id
LIMIT $1;

-- name: list_workflows_by_status
SELECT * FROM durable_workflow_instances
WHERE status = $1
ORDER BY created_at DESC, id
LIMIT $2;

-- name: list_workflows_by_type
SELECT * FROM durable_workflow_instances
WHERE workflow_type = $1
ORDER BY created_at DESC, id
LIMIT $2;

-- name: list_workflows_by_type_and_status
SELECT * FROM durable_workflow_instances
WHERE workflow_type = $1 AND status = $2
ORDER BY created_at DESC, id
LIMIT $3;

-- name: append_events
-- Append events ($3 types, $4 JSON data) after sequence $2, optimistically: nothing is written
-- and no row comes back when the history moved since the caller read last_event_seq = $2.
-- With $6, the same statement queues a decision for the workflow unless one already waits or
-- is being made (that one's end queues the next: 0009) ($7: its max attempts). history_bytes grows by the appended data's size (the history
-- limits read it; nothing sums the history).
WITH advanced AS (
    UPDATE durable_workflow_instances
    SET last_event_seq = last_event_seq + cardinality($3::text[]), updated_at = $5,
        history_bytes = history_bytes + (SELECT COALESCE(sum(octet_length(d)), 0) FROM unnest($4::text[]) AS d)
    WHERE id = $1 AND last_event_seq = $2
    RETURNING id, workflow_type, last_event_seq, trace_id, span_id, sticky_worker_id
), appended AS (
    INSERT INTO durable_workflow_events (workflow_id, sequence_num, event_type, event_data, created_at)
    SELECT a.id, $2 + e.ord, e.event_type, e.event_data::jsonb, $5
    FROM advanced a, unnest($3::text[], $4::text[]) WITH ORDINALITY AS e(event_type, event_data, ord)
), woken AS (
    -- routed to the worker that keeps the instance while that worker is active (0009)
    INSERT INTO durable_task_queue (kind, workflow_id, activity_type, visible_at, created_at, max_attempts, trace_id, span_id, sticky_to)
    SELECT 'workflow', a.id, a.workflow_type, $5, $5, $7, a.trace_id, a.span_id,
           (SELECT k.id FROM durable_workers k WHERE k.id = a.sticky_worker_id AND k.status = 'active')
    FROM advanced a WHERE $6::boolean
    ON CONFLICT (workflow_id) WHERE kind = 'workflow' AND status IN ('pending', 'claimed') DO NOTHING
)
SELECT last_event_seq FROM advanced;

-- name: load_events
-- A page of a history ($3 events at most; NULL: all).
SELECT sequence_num, event_type, event_data, created_at
FROM durable_workflow_events
WHERE workflow_id = $1 AND sequence_num > $2
ORDER BY sequence_num
LIMIT $3;

-- name: pin_workflow
UPDATE durable_workflow_instances SET pinned = $2 WHERE id = $1
RETURNING pinned;

-- name: workflows_with_histories
-- Workflows $1 with their histories, in one statement and so one snapshot: a claimed decision
-- never sees a workflow row newer than its history, or older. The history comes as an array
-- of event rows in sequence order (the unique index's order, no sort): the whole of it, or,
-- for a decision routed to the worker that keeps the instance ($2, per workflow: the task's
-- sticky_to, when it is still the workflow's sticky worker), the events after what its last
-- decision saw (after_seq; 0: the whole history).
SELECT w.*, a.after_seq,
       ARRAY(SELECT e FROM durable_workflow_events e
             WHERE e.workflow_id = w.id AND e.sequence_num > a.after_seq ORDER BY e.sequence_num) AS history
FROM unnest($1::text[], $2::text[]) AS r(id, sticky)
JOIN durable_workflow_instances w ON w.id = r.id
CROSS JOIN LATERAL (
    SELECT CASE WHEN r.sticky IS NOT NULL AND w.sticky_worker_id = r.sticky
                THEN COALESCE(w.decision_seen_seq, 0) ELSE 0 END AS after_seq
) AS a;

-- name: set_workflow_status
-- Every status change of a workflow goes through here; one that ends it also sends NOTIFY
-- durable_workflows with the workflow's id (delivered on commit): WaitWorkflow calls wake then.
WITH updated AS (
    UPDATE durable_workflow_instances
    SET status = $2,
        result = COALESCE($3::jsonb, result),
        error = COALESCE($4::jsonb, error),
        updated_at = $5,
        started_at = CASE WHEN $2 = 'running' THEN COALESCE(started_at, $5) ELSE started_at END,
        completed_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled') THEN $5 ELSE completed_at END
    WHERE id = $1
    RETURNING *
)
SELECT updated.*,
       CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN pg_notify('durable_workflows', id) END AS ended
FROM updated;

-- name: finish_decision
-- An applied decision's bookkeeping in one statement: the workflow decided through sequence
-- $4 (and running), its signals up to $3 (what the worker saw) delivered, the worker that
-- keeps the instance $7 (NULL: none) with the point it saw, and the decision task $5
-- completed with result $6.
WITH decided AS (
    UPDATE durable_workflow_instances
    SET decided_through_seq = $4, updated_at = $2, blocked = NULL,
        status = CASE WHEN status = 'pending' THEN 'running' ELSE status END,
        started_at = COALESCE(started_at, $2),
        decision_seen_seq = $3, sticky_worker_id = $7
    WHERE id = $1
), delivered AS (
    UPDATE durable_signals SET delivered_at = $2
    WHERE workflow_id = $1 AND sequence_num <= $3 AND delivered_at IS NULL
)
UPDATE durable_task_queue
SET status = 'completed', result = $6::jsonb, completed_at = $2
WHERE id = $5;

-- name: journal_decision
-- A journal's bookkeeping (ctx.step): the workflow running (decided no further: the decision
-- is still being made), and its decision task $3 still held, with what this attempt's journals
-- wrote so far ({"attempt": $4, "journalled": $5}: a journal made again is known by it).
WITH running AS (
    UPDATE durable_workflow_instances
    SET updated_at = $2, blocked = NULL,
        status = CASE WHEN status = 'pending' THEN 'running' ELSE status END,
        started_at = COALESCE(started_at, $2)
    WHERE id = $1
)
UPDATE durable_task_queue
SET heartbeat_details = jsonb_build_object('attempt', $4::int, 'journalled', $5::int), heartbeat_at = $2
WHERE id = $3;

-- name: start_workflows_running
-- Skips rows another transaction holds: the decision's own commit sets `running` too.
UPDATE durable_workflow_instances
SET status = 'running', started_at = COALESCE(started_at, $2), updated_at = $2
WHERE id IN (
    SELECT id FROM durable_workflow_instances
    WHERE id = ANY($1::text[]) AND status = 'pending'
    FOR UPDATE SKIP LOCKED
);

-- name: wake_workflow
-- Queue a decision for the workflow unless one is already waiting; routed to worker $7 (the
-- one that keeps the instance) while it is active.
INSERT INTO durable_task_queue (kind, workflow_id, activity_type, visible_at, created_at, max_attempts, trace_id, span_id, sticky_to)
VALUES ('workflow', $1, $2, $3, $3, $4, $5, $6,
        (SELECT id FROM durable_workers WHERE id = $7 AND status = 'active'))
ON CONFLICT (workflow_id) WHERE kind = 'workflow' AND status IN ('pending', 'claimed') DO NOTHING;

-- name: insert_task
INSERT INTO durable_task_queue (
    kind, workflow_id, activity_id, activity_type, input, priority, visible_at, max_attempts,
    retry_policy, schedule_to_start_timeout, start_to_close_timeout, heartbeat_timeout, created_at,
    trace_id, span_id, concurrency_key, concurrency_limit)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT (workflow_id, kind, activity_id)
    WHERE workflow_id IS NOT NULL AND kind IN ('activity', 'timer') AND status IN ('pending', 'claimed', 'completed')
    DO NOTHING
RETURNING id;

-- name: worker_status
SELECT status FROM durable_workers WHERE id = $1;

-- name: claim_tasks
-- Hand out up to $4 visible pending tasks of the worker's types, highest priority first, to
-- an active worker (no rows at all when it is not active: the caller then asks why). Unkeyed
-- tasks only (keyed ones: keyed_claim in gates.sql).
-- Activity types in $6 are held back by an open circuit breaker (or take half-open trials
-- apart), and so is any type whose breaker is not closed: one this replica does not know of
-- yet (it caches the breaker keys) holds back at once. Each (kind, type) is read
-- in the order of the partial claim index, so a claim costs the same with 10 or 10 million
-- tasks waiting; SKIP LOCKED lets concurrent claimers pass each other. Decisions routed to
-- this worker (sticky_to: it keeps their workflows' instances) come through their own index;
-- other workers pass them by until the fallback clears sticky_to. It returns only the
-- columns a worker is handed (records.ClaimedTask).
WITH wanted AS (
    SELECT 'activity'::text AS kind, t AS type FROM unnest($2::text[]) AS t WHERE t <> ALL($6::text[])
      AND NOT EXISTS (SELECT 1 FROM durable_circuit_breaker_state b WHERE b.key = t AND b.state <> 'closed')
    UNION ALL
    SELECT 'workflow'::text, t FROM unnest($3::text[]) AS t
),
active AS (
    SELECT EXISTS (SELECT 1 FROM durable_workers WHERE id = $1 AND status = 'active') AS ok
),
mine AS (
    SELECT q.id, q.priority, q.visible_at FROM durable_task_queue q
    WHERE q.status = 'pending' AND q.sticky_to = $1 AND q.kind = 'workflow'
      AND q.activity_type = ANY($3::text[]) AND q.visible_at <= $5 AND (SELECT ok FROM active)
    ORDER BY q.priority DESC, q.visible_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED
),
typed AS (
    SELECT c.id, c.priority, c.visible_at FROM wanted w
    CROSS JOIN LATERAL (
        SELECT q.id, q.priority, q.visible_at FROM durable_task_queue q
        WHERE q.status = 'pending' AND q.concurrency_key IS NULL AND q.kind = w.kind AND q.activity_type = w.type
          AND q.visible_at <= $5 AND q.sticky_to IS NULL
        ORDER BY q.priority DESC, q.visible_at
        LIMIT $4
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE (SELECT ok FROM active)
),
next AS (
    SELECT id FROM (SELECT * FROM mine UNION ALL SELECT * FROM typed) AS s
    ORDER BY priority DESC, visible_at
    LIMIT $4
)
UPDATE durable_task_queue t
SET status = 'claimed', claimed_by = $1, claimed_at = $5, heartbeat_at = $5, attempt = t.attempt + 1
FROM next
WHERE t.id = next.id
RETURNING t.id, t.kind, t.workflow_id, t.activity_id, t.activity_type, t.input, t.attempt, t.max_attempts,
    t.priority, t.visible_at, t.claimed_by, t.heartbeat_timeout, t.start_to_close_timeout,
    t.heartbeat_details, t.trace_id, t.span_id, t.sticky_to;

-- name: claim_tasks_of_types
-- claim_tasks for a worker of several types, locking only the rows it takes: each (kind, type)
-- offers up to 2 x $4 candidates in claim-index order without a lock, and the candidates are
-- then locked in priority order, SKIP LOCKED, until $4 are held. (Locking inside each type's scan
-- would hold up to $4 rows of every type for the claim's transaction, and the surplus, not
-- taken, would stay invisible to other claimers until their next re-check.) Concurrent
-- claimers still pass each other: a candidate another claimer holds is skipped for the next
-- (twice as many candidates as wanted leave room for one claimer racing for the same rows).
-- The candidates are read once (an array) and locked by primary key; `status || ''` keeps the
-- planner off the claim index for that step: a generic plan made while the statistics said
-- nothing was pending otherwise walked every pending task and ran the candidates' scans again
-- for each (measured: 1.4 s per claim at 30,000 pending, so a backlog that formed never drained).
WITH wanted AS (
    SELECT 'activity'::text AS kind, t AS type FROM unnest($2::text[]) AS t WHERE t <> ALL($6::text[])
      AND NOT EXISTS (SELECT 1 FROM durable_circuit_breaker_state b WHERE b.key = t AND b.state <> 'closed')
    UNION ALL
    SELECT 'workflow'::text, t FROM unnest($3::text[]) AS t
),
candidates AS (
    SELECT c.id FROM wanted w
    CROSS JOIN LATERAL (
        SELECT q.id FROM durable_task_queue q
        WHERE q.status = 'pending' AND q.concurrency_key IS NULL AND q.kind = w.kind AND q.activity_type = w.type
          AND q.visible_at <= $5 AND q.sticky_to IS NULL
        ORDER BY q.priority DESC, q.visible_at
        LIMIT 2 * $4
    ) c
    WHERE EXISTS (SELECT 1 FROM durable_workers WHERE id = $1 AND status = 'active')
    UNION ALL
    SELECT q.id FROM durable_task_queue q
    WHERE q.status = 'pending' AND q.sticky_to = $1 AND q.kind = 'workflow'
      AND q.activity_type = ANY($3::text[]) AND q.visible_at <= $5
      AND EXISTS (SELECT 1 FROM durable_workers WHERE id = $1 AND status = 'active')
),
next AS (
    SELECT q.id FROM durable_task_queue q
    WHERE q.id = ANY (ARRAY(SELECT id FROM candidates)) AND q.status || '' = 'pending' AND q.concurrency_key IS NULL
      AND q.visible_at <= $5
    ORDER BY q.priority DESC, q.visible_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE durable_task_queue t
SET status = 'claimed', claimed_by = $1, claimed_at = $5, heartbeat_at = $5, attempt = t.attempt + 1
FROM next
WHERE t.id = next.id
RETURNING t.id, t.kind, t.workflow_id, t.activity_id, t.activity_type, t.input, t.attempt, t.max_attempts,
    t.priority, t.visible_at, t.claimed_by, t.heartbeat_timeout, t.start_to_close_timeout,
    t.heartbeat_details, t.trace_id, t.span_id, t.sticky_to;

-- name: claim_tasks_of_type
-- The same, for a single activity type in half-open trial mode.
WITH next AS (
    SELECT id FROM durable_task_queue
    WHERE status = 'pending' AND concurrency_key IS NULL AND visible_at <= $4 AND kind = 'activity'
      AND activity_type = $2
    ORDER BY priority DESC, visible_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE durable_task_queue t
SET status = 'claimed', claimed_by = $1, claimed_at = $4, heartbeat_at = $4, attempt = t.attempt + 1
FROM next
WHERE t.id = next.id
RETURNING t.id, t.kind, t.workflow_id, t.activity_id, t.activity_type, t.input, t.attempt, t.max_attempts,
    t.priority, t.visible_at, t.claimed_by, t.heartbeat_timeout, t.start_to_close_timeout,
    t.heartbeat_details, t.trace_id, t.span_id, t.sticky_to;

-- name: lock_owned_task
-- The fence: the row only when this worker still holds this attempt. The fences read the row
-- by its primary key: `status || ''` keeps the planner off the claimed index, which it takes
-- when statistics were gathered while nothing was claimed (a fresh queue) and then reads
-- every claimed task per call (measured: 2.3M index reads per 1,000 four-step workflows).
SELECT * FROM durable_task_queue
WHERE id = $1 AND status || '' = 'claimed' AND claimed_by = $2 AND attempt = $3
FOR UPDATE;

-- name: get_task
SELECT * FROM durable_task_queue WHERE id = $1;

-- name: lock_workflow_of_task
-- The write path's first step in one statement: the workflow of task $1, locked. No row when
-- the task does not exist, belongs to no workflow, or its workflow is gone (the caller asks
-- which with task_workflow_id).
SELECT w.* FROM durable_workflow_instances w
WHERE w.id = (SELECT workflow_id FROM durable_task_queue WHERE id = $1)
FOR UPDATE;

-- name: owned_workflow_task
-- The workflow of workflow task $1 while worker $2 holds attempt $3 (no row otherwise).
SELECT workflow_id FROM durable_task_queue
WHERE id = $1 AND status || '' = 'claimed' AND claimed_by = $2 AND attempt = $3 AND kind = 'workflow';

-- name: task_workflow_id
-- What a task's write path needs first: which workflow to lock (NULL for a standalone task).
SELECT workflow_id FROM durable_task_queue WHERE id = $1;

-- name: heartbeat_tasks
UPDATE durable_task_queue t
SET heartbeat_at = $2,
    heartbeat_details = COALESCE(h.details::jsonb, t.heartbeat_details)
FROM unnest($3::uuid[], $4::int[], $5::text[]) AS h(id, attempt, details)
WHERE t.id = h.id AND t.attempt = h.attempt AND t.status = 'claimed' AND t.claimed_by = $1
RETURNING t.id;

-- name: cancel_flags
SELECT id, cancel_requested, status FROM durable_task_queue WHERE id = ANY($1::uuid[]);

-- name: complete_standalone_tasks
-- The fast path: standalone activities still held by this worker and attempt, in one statement.
UPDATE durable_task_queue t
SET status = 'completed', result = c.result::jsonb, completed_at = $2
FROM unnest($3::uuid[], $4::int[], $5::text[]) AS c(id, attempt, result)
WHERE t.id = c.id AND t.attempt = c.attempt AND t.status = 'claimed' AND t.claimed_by = $1
  AND t.kind = 'activity' AND t.workflow_id IS NULL
RETURNING t.id, t.activity_type;

-- name: guarded_keys
-- The activity types with a circuit breaker and those with a rate limit, read together (the
-- store caches them for a couple of seconds; claims of other types do no breaker or rate work).
SELECT key, 'breaker' AS guard FROM durable_circuit_breaker_state
UNION ALL
SELECT key, 'rate' FROM durable_rate_limits;

-- name: notify_tasks
SELECT pg_notify('durable_tasks', $1);

-- name: complete_owned_activity
-- The fence and the write in one statement: the activity completes only while worker $2 still
-- holds attempt $3 (no row otherwise: the caller then asks why). outcome_recorded: its
-- workflow's history already holds this step's outcome (a requeued run of a step whose
-- failure the workflow saw): the result stays on the task, the history gets no second one.
UPDATE durable_task_queue t
SET status = 'completed', result = $4::jsonb, completed_at = $5
WHERE id = $1 AND status || '' = 'claimed' AND claimed_by = $2 AND attempt = $3 AND kind = 'activity'
RETURNING activity_id, activity_type, attempt, t.workflow_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM durable_workflow_events e
    WHERE e.workflow_id = t.workflow_id AND e.event_type IN ('ActivityCompleted', 'ActivityFailed')
      AND e.event_data->>'activity_id' = t.activity_id
) AS outcome_recorded;

-- name: step_outcome_recorded
-- Whether workflow $1's history holds an outcome of step $2 (the step-outcome index, 0011).
SELECT EXISTS (
    SELECT 1 FROM durable_workflow_events
    WHERE workflow_id = $1 AND event_type IN ('ActivityCompleted', 'ActivityFailed')
      AND event_data->>'activity_id' = $2
);

-- name: complete_task
UPDATE durable_task_queue
SET status = 'completed', result = $2::jsonb, completed_at = $3
WHERE id = $1;

-- name: retry_task
UPDATE durable_task_queue
SET status = 'pending', claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL, sticky_to = NULL,
    visible_at = $2, last_error = $3, error_history = error_history || $4::jsonb
WHERE id = $1;

-- name: bury_task
UPDATE durable_task_queue
SET status = 'dead', last_error = $2, error_history = error_history || $3::jsonb, completed_at = $4
WHERE id = $1
RETURNING *;

-- name: supersede_task
-- A workflow task that lost to a newer pending decision of the same workflow.
UPDATE durable_task_queue
SET status = 'cancelled', completed_at = $2
WHERE id = $1;

-- name: insert_dead_letter
INSERT INTO durable_dead_letter_queue (
    original_task_id, workflow_id, activity_id, activity_type, input, attempts, last_error,
    error_history, reason, dead_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8::jsonb, $9, $10)
RETURNING id;

-- name: pending_decision_exists
SELECT EXISTS (
    SELECT 1 FROM durable_task_queue
    WHERE workflow_id = $1 AND kind = 'workflow' AND status = 'pending'
);

-- name: owned_tasks
SELECT * FROM durable_task_queue WHERE status = 'claimed' AND claimed_by = $1 ORDER BY id FOR UPDATE;

-- name: release_task
UPDATE durable_task_queue
SET status = 'pending', claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL, sticky_to = NULL,
    visible_at = $2, release_count = release_count + 1
WHERE id = $1;

-- name: cancel_open_steps
-- When a workflow ends or is cancelled: its tasks and timers that have not finished are
-- cancelled. Returns what each was, so a claimed trial of a half-open breaker frees its slot.
UPDATE durable_task_queue t
SET status = 'cancelled', cancel_requested = true, completed_at = $2
FROM (
    SELECT id, status FROM durable_task_queue
    WHERE workflow_id = $1 AND status IN ('pending', 'claimed')
    FOR UPDATE
) AS was
WHERE t.id = was.id
RETURNING t.id, t.kind, t.activity_type, was.status AS was_status;

-- name: cancel_step
-- A decision cancels one step of workflow $1 (kind $2, activity or timer id $3) that has not
-- finished: a pending one never runs, a claimed one learns it through its heartbeat and its
-- result is refused. Returns what it was, so a claimed half-open trial frees its slot.
UPDATE durable_task_queue t
SET status = 'cancelled', cancel_requested = true, completed_at = $4
FROM (
    SELECT id, status FROM durable_task_queue
    WHERE workflow_id = $1 AND kind = $2 AND activity_id = $3 AND status IN ('pending', 'claimed')
    FOR UPDATE
) AS was
WHERE t.id = was.id
RETURNING t.id, t.kind, t.activity_type, was.status AS was_status;

-- name: block_workflow
-- A decision of workflow $1 failed: it stays running, blocked with $2 (the error, a JSON
-- object; "failures" counts the failed decisions in a row).
UPDATE durable_workflow_instances
SET blocked = $2::jsonb || jsonb_build_object(
        'failures', COALESCE((blocked->>'failures')::integer, 0) + 1,
        'since', COALESCE(blocked->'since', to_jsonb($3::timestamptz))),
    updated_at = $3
WHERE id = $1
RETURNING (blocked->>'failures')::integer AS failures;

-- name: request_cancel
UPDATE durable_workflow_instances SET cancel_requested_at = $2, updated_at = $2 WHERE id = $1;

-- name: insert_signal
INSERT INTO durable_signals (workflow_id, signal_type, payload, sequence_num, created_at)
VALUES ($1, $2, $3::jsonb, $4, $5)
RETURNING id;

-- name: mark_signals_delivered
UPDATE durable_signals SET delivered_at = $3
WHERE workflow_id = $1 AND sequence_num <= $2 AND delivered_at IS NULL;

-- name: list_signals
SELECT * FROM durable_signals WHERE workflow_id = $1 ORDER BY id;

-- name: list_dead_letters
SELECT * FROM durable_dead_letter_queue
WHERE ($1::text IS NULL OR activity_type = $1)
ORDER BY dead_at DESC, id
LIMIT $2;

-- name: get_dead_letter
SELECT * FROM durable_dead_letter_queue WHERE id = $1;

-- name: delete_dead_letter
-- An entry, and the dead task of a standalone activity with it (a workflow's dead task stays
-- with its workflow's history until retention deletes the workflow).
WITH entry AS (
    DELETE FROM durable_dead_letter_queue WHERE id = $1
    RETURNING original_task_id, workflow_id
), task AS (
    DELETE FROM durable_task_queue t USING entry
    WHERE t.id = entry.original_task_id AND t.workflow_id IS NULL AND t.status = 'dead'
)
SELECT count(*) FROM entry;

-- name: requeue_dead_letter
-- The same statement operators run by hand; the durable_dlq_requeue trigger enqueues the task.
UPDATE durable_dead_letter_queue SET requeued_at = $2 WHERE id = $1
RETURNING requeued_task_id;

-- name: register_worker
INSERT INTO durable_workers (
    id, worker_group, activity_types, workflow_types, max_concurrency, current_load, status,
    last_heartbeat_at, started_at, stopped_at, hostname, version)
VALUES ($1, $2, $3::text[], $4::text[], $5, 0, 'active', $6, $6, NULL, $7, $8)
ON CONFLICT (id) DO UPDATE SET
    worker_group = EXCLUDED.worker_group, activity_types = EXCLUDED.activity_types,
    workflow_types = EXCLUDED.workflow_types, max_concurrency = EXCLUDED.max_concurrency,
    current_load = 0, status = 'active', drain_requested = false, last_heartbeat_at = EXCLUDED.last_heartbeat_at,
    started_at = EXCLUDED.started_at, stopped_at = NULL, hostname = EXCLUDED.hostname,
    version = EXCLUDED.version;

-- name: worker_heartbeat
-- A worker marked lost that heartbeats again is alive: it becomes active again, or draining
-- again if it had been drained.
UPDATE durable_workers
SET current_load = $2, last_heartbeat_at = $3,
    status = CASE WHEN status <> 'lost' THEN status
                  WHEN drain_requested THEN 'draining' ELSE 'active' END
WHERE id = $1 AND status <> 'stopped'
RETURNING status;

-- name: drain_worker
-- Draining a stopped worker changes nothing (it stays stopped).
UPDATE durable_workers
SET drain_requested = true, status = CASE WHEN status = 'stopped' THEN status ELSE 'draining' END
WHERE id = $1
RETURNING status;

-- name: stop_worker
UPDATE durable_workers
SET status = 'stopped', stopped_at = $2, current_load = 0
WHERE id = $1
RETURNING status;

-- name: list_workers
SELECT * FROM durable_workers
WHERE ($1::text IS NULL OR worker_group = $1) AND ($2 OR status <> 'stopped')
ORDER BY id;

-- name: mark_lost_workers
UPDATE durable_workers SET status = 'lost'
WHERE status IN ('active', 'draining') AND last_heartbeat_at < $1
RETURNING id;

-- name: stale_claimed_tasks
-- Claimed tasks whose worker stopped heartbeating (per-task heartbeat_timeout, else $2 s).
SELECT * FROM durable_task_queue
WHERE status = 'claimed'
  AND heartbeat_at < $1::timestamptz - make_interval(secs => COALESCE(heartbeat_timeout, $2))
ORDER BY heartbeat_at
LIMIT $3
FOR UPDATE SKIP LOCKED;

-- name: overdue_task_ids
-- Claimed tasks past their start-to-close timeout.
SELECT id, workflow_id, claimed_by, attempt FROM durable_task_queue
WHERE status = 'claimed' AND start_to_close_timeout IS NOT NULL
  AND claimed_at < $1::timestamptz - make_interval(secs => start_to_close_timeout)
ORDER BY claimed_at
LIMIT $2;

-- name: unstarted_task_ids
-- Pending tasks past their schedule-to-start timeout (counted from creation).
SELECT * FROM durable_task_queue
WHERE status = 'pending' AND schedule_to_start_timeout IS NOT NULL
  AND created_at < $1::timestamptz - make_interval(secs => schedule_to_start_timeout)
ORDER BY created_at
LIMIT $2;

-- name: lock_task_in_state
SELECT * FROM durable_task_queue WHERE id = $1 AND status = $2 AND attempt = $3 FOR UPDATE;

-- name: unstick_overdue
-- The sticky fallback: decisions routed to a worker that has not claimed them since $1 (it was
-- killed, or is busy) go to any worker of their type, up to $2 at a time. Also every pending
-- decision routed to worker $3 (it stopped). What was freed, per type, to wake claims.
WITH overdue AS (
    SELECT id FROM durable_task_queue
    WHERE status = 'pending' AND sticky_to IS NOT NULL AND (visible_at <= $1 OR sticky_to = $3)
    ORDER BY visible_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), freed AS (
    UPDATE durable_task_queue t SET sticky_to = NULL
    FROM overdue WHERE t.id = overdue.id
    RETURNING t.kind, t.activity_type
)
SELECT kind, activity_type, count(*) AS n FROM freed GROUP BY kind, activity_type;

-- name: reclaim_tasks
UPDATE durable_task_queue
SET status = 'pending', claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL, sticky_to = NULL,
    visible_at = $2::timestamptz, reclaim_count = reclaim_count + 1,
    last_error = 'worker stopped heartbeating', error_history = error_history || jsonb_build_array(
        jsonb_build_object('attempt', attempt, 'type', 'HeartbeatTimeout',
                           'message', 'worker ' || claimed_by || ' stopped heartbeating',
                           'worker', claimed_by, 'at', $2::timestamptz))
WHERE id = ANY($1::uuid[]);

-- name: due_timers
SELECT id, workflow_id FROM durable_task_queue
WHERE kind = 'timer' AND status = 'pending' AND activity_type = 'timer' AND visible_at <= $1
ORDER BY visible_at
LIMIT $2;

-- name: lock_pending_task
SELECT * FROM durable_task_queue WHERE id = $1 AND status = 'pending' FOR UPDATE SKIP LOCKED;

-- name: breakers_for
SELECT * FROM durable_circuit_breaker_state WHERE key = ANY($1::text[]);

-- name: breakers_to_half_open
UPDATE durable_circuit_breaker_state
SET state = 'half_open', half_open_in_flight = 0, success_count = 0, updated_at = $2
WHERE key = ANY($1::text[]) AND state = 'open'
  AND opened_at + make_interval(secs => reset_timeout_seconds) <= $2;

-- name: lock_breaker
SELECT * FROM durable_circuit_breaker_state WHERE key = $1 FOR UPDATE;

-- name: return_trials
-- Give back half-open trial slots that were reserved but not used.
UPDATE durable_circuit_breaker_state
SET half_open_in_flight = GREATEST(half_open_in_flight - $2, 0), updated_at = $3
WHERE key = $1 AND state = 'half_open';

-- name: set_trials_in_flight
UPDATE durable_circuit_breaker_state SET half_open_in_flight = $2, updated_at = $3 WHERE key = $1;

-- name: configure_breaker
INSERT INTO durable_circuit_breaker_state (
    key, failure_threshold, window_seconds, reset_timeout_seconds, half_open_max_trials,
    success_threshold, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (key) DO UPDATE SET
    failure_threshold = EXCLUDED.failure_threshold, window_seconds = EXCLUDED.window_seconds,
    reset_timeout_seconds = EXCLUDED.reset_timeout_seconds,
    half_open_max_trials = EXCLUDED.half_open_max_trials,
    success_threshold = EXCLUDED.success_threshold, updated_at = EXCLUDED.updated_at
RETURNING *;

-- name: breaker_failure
-- One atomic statement per failure (the row is locked), so concurrent workers never lose a count.
UPDATE durable_circuit_breaker_state b
SET failure_count = c.new_count,
    window_started_at = c.new_window,
    state = CASE WHEN b.state = 'half_open' OR (b.state = 'closed' AND c.new_count >= b.failure_threshold)
                 THEN 'open' ELSE b.state END,
    opened_at = CASE WHEN b.state = 'half_open' OR (b.state = 'closed' AND c.new_count >= b.failure_threshold)
                 THEN $2 ELSE b.opened_at END,
    half_open_in_flight = CASE WHEN b.state = 'half_open' THEN 0 ELSE b.half_open_in_flight END,
    success_count = 0,
    updated_at = $2
FROM (
    SELECT key,
           CASE WHEN state <> 'closed' THEN failure_count
                WHEN window_started_at IS NULL
                  OR window_started_at + make_interval(secs => window_seconds) <= $2 THEN 1
                ELSE failure_count + 1 END AS new_count,
           CASE WHEN state = 'closed' AND (window_started_at IS NULL
                  OR window_started_at + make_interval(secs => window_seconds) <= $2) THEN $2
                ELSE window_started_at END AS new_window
    FROM durable_circuit_breaker_state WHERE key = $1 FOR UPDATE
) c
WHERE b.key = c.key
RETURNING b.state;

-- name: breaker_success
-- $3 successes of type $1 (a batch counts each: every trial of a half-open breaker gives its slot back).
UPDATE durable_circuit_breaker_state b
SET success_count = CASE WHEN b.state = 'half_open' THEN b.success_count + $3 ELSE 0 END,
    half_open_in_flight = CASE WHEN b.state = 'half_open'
        THEN GREATEST(b.half_open_in_flight - $3, 0) ELSE b.half_open_in_flight END,
    state = CASE WHEN b.state = 'half_open' AND b.success_count + $3 >= b.success_threshold
        THEN 'closed' ELSE b.state END,
    failure_count = CASE WHEN b.state = 'half_open' AND b.success_count + $3 >= b.success_threshold
        THEN 0 ELSE b.failure_count END,
    window_started_at = CASE WHEN b.state = 'half_open' AND b.success_count + $3 >= b.success_threshold
        THEN NULL ELSE b.window_started_at END,
    opened_at = CASE WHEN b.state = 'half_open' AND b.success_count + $3 >= b.success_threshold
        THEN NULL ELSE b.opened_at END,
    updated_at = $2
WHERE b.key = $1
RETURNING b.state;

-- name: queue_stats
-- Pending tasks through the claim indexes (unkeyed, keyed), claimed ones through the claimed
-- index: the finished rows of the queue (most of it) are never read.
SELECT kind, type, sum(pending)::bigint AS pending, sum(delayed)::bigint AS delayed,
       sum(claimed)::bigint AS claimed, min(oldest_visible_at) AS oldest_visible_at
FROM (
    SELECT kind, activity_type AS type,
           count(*) FILTER (WHERE visible_at <= $3) AS pending,
           count(*) FILTER (WHERE visible_at > $3) AS delayed,
           0 AS claimed,
           min(visible_at) FILTER (WHERE visible_at <= $3) AS oldest_visible_at
    FROM durable_task_queue
    WHERE status = 'pending' AND concurrency_key IS NULL
      AND ((kind = 'activity' AND activity_type = ANY($1::text[]))
        OR (kind = 'workflow' AND activity_type = ANY($2::text[])))
    GROUP BY kind, activity_type
    UNION ALL
    SELECT kind, activity_type AS type,
           count(*) FILTER (WHERE visible_at <= $3) AS pending,
           count(*) FILTER (WHERE visible_at > $3) AS delayed,
           0 AS claimed,
           min(visible_at) FILTER (WHERE visible_at <= $3) AS oldest_visible_at
    FROM durable_task_queue
    WHERE status = 'pending' AND concurrency_key IS NOT NULL
      AND ((kind = 'activity' AND activity_type = ANY($1::text[]))
        OR (kind = 'workflow' AND activity_type = ANY($2::text[])))
    GROUP BY kind, activity_type
    UNION ALL
    SELECT kind, activity_type, 0, 0, count(*), NULL
    FROM durable_task_queue
    WHERE status = 'claimed'
      AND ((kind = 'activity' AND activity_type = ANY($1::text[]))
        OR (kind = 'workflow' AND activity_type = ANY($2::text[])))
    GROUP BY kind, activity_type
) AS s
GROUP BY kind, type
ORDER BY kind, type;

-- name: get_worker
SELECT * FROM durable_workers WHERE id = $1;

-- name: queue_stats_all
SELECT kind, type, sum(pending)::bigint AS pending, sum(delayed)::bigint AS delayed,
       sum(claimed)::bigint AS claimed, min(oldest_visible_at) AS oldest_visible_at
FROM (
    SELECT kind, activity_type AS type,
           count(*) FILTER (WHERE visible_at <= $1) AS pending,
           count(*) FILTER (WHERE visible_at > $1) AS delayed,
           0 AS claimed,
           min(visible_at) FILTER (WHERE visible_at <= $1) AS oldest_visible_at
    FROM durable_task_queue
    WHERE status = 'pending' AND concurrency_key IS NULL AND kind IN ('activity', 'workflow')
    GROUP BY kind, activity_type
    UNION ALL
    SELECT kind, activity_type AS type,
           count(*) FILTER (WHERE visible_at <= $1) AS pending,
           count(*) FILTER (WHERE visible_at > $1) AS delayed,
           0 AS claimed,
           min(visible_at) FILTER (WHERE visible_at <= $1) AS oldest_visible_at
    FROM durable_task_queue
    WHERE status = 'pending' AND concurrency_key IS NOT NULL AND kind IN ('activity', 'workflow')
    GROUP BY kind, activity_type
    UNION ALL
    SELECT kind, activity_type, 0, 0, count(*), NULL
    FROM durable_task_queue
    WHERE status = 'claimed' AND kind IN ('activity', 'workflow')
    GROUP BY kind, activity_type
) AS s
GROUP BY kind, type
ORDER BY kind, type;

-- name: throughput
-- Tasks completed per kind, type and bucket in [$1, $2) (bucket $3 seconds wide, 0 = the first),
-- through the completed index (0008). No types named ($4 and $5 empty): every type.
SELECT kind, activity_type AS type,
       floor(extract(epoch FROM completed_at - $1) / $3)::int AS bucket, count(*)::bigint AS completed
FROM durable_task_queue
WHERE status = 'completed' AND completed_at >= $1 AND completed_at < $2
  AND kind IN ('activity', 'workflow')
  AND ((cardinality($4::text[]) = 0 AND cardinality($5::text[]) = 0)
    OR (kind = 'activity' AND activity_type = ANY($4::text[]))
    OR (kind = 'workflow' AND activity_type = ANY($5::text[])))
GROUP BY kind, activity_type, bucket
ORDER BY kind, activity_type, bucket;

-- name: dead_letter_counts
SELECT activity_type, count(*) AS n FROM durable_dead_letter_queue
WHERE requeued_at IS NULL GROUP BY activity_type;

-- name: breaker_states
SELECT key, state FROM durable_circuit_breaker_state;

-- name: worker_counts
-- Workers that are not stopped (stopped ones are not counted; retention deletes them).
SELECT status, count(*) AS n FROM durable_workers WHERE status <> 'stopped' GROUP BY status;

-- name: delete_finished_workflows
-- Retention: up to $3 workflows that ended with status $1 before $2, with their events, tasks,
-- signals and dead letters (ON DELETE CASCADE). Pinned ones stay, and so does a workflow with
-- a dead-letter entry nobody resolved. SKIP LOCKED: control planes share the work, and a
-- workflow someone holds is left for the next pass.
WITH doomed AS (
    SELECT w.id FROM durable_workflow_instances w
    WHERE w.status = $1 AND w.completed_at IS NOT NULL AND NOT w.pinned AND w.completed_at < $2
      AND NOT EXISTS (
          SELECT 1 FROM durable_dead_letter_queue d WHERE d.workflow_id = w.id AND d.requeued_at IS NULL)
    ORDER BY w.completed_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM durable_workflow_instances w USING doomed WHERE w.id = doomed.id
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: delete_finished_standalone_tasks
-- Retention: up to $2 standalone activities that finished before $1 (a dead one stays while
-- its dead-letter entry does).
WITH doomed AS (
    SELECT t.id FROM durable_task_queue t
    WHERE t.workflow_id IS NULL AND t.status IN ('completed', 'failed', 'dead', 'cancelled')
      AND t.completed_at < $1
      AND NOT EXISTS (SELECT 1 FROM durable_dead_letter_queue d WHERE d.original_task_id = t.id)
    ORDER BY t.completed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM durable_task_queue t USING doomed WHERE t.id = doomed.id
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: delete_resolved_dead_letters
-- Retention: up to $2 dead-letter entries requeued before $1.
WITH doomed AS (
    SELECT id FROM durable_dead_letter_queue
    WHERE requeued_at IS NOT NULL AND requeued_at < $1
    ORDER BY requeued_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM durable_dead_letter_queue d USING doomed WHERE d.id = doomed.id
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: delete_gone_workers
-- Retention: up to $2 stopped or lost workers not heard of since $1.
WITH doomed AS (
    SELECT id FROM durable_workers
    WHERE status IN ('stopped', 'lost') AND last_heartbeat_at < $1
    ORDER BY last_heartbeat_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM durable_workers w USING doomed WHERE w.id = doomed.id
    RETURNING 1
)
SELECT count(*) FROM gone;

-- Browsing (ClientService lists for the console and the CLI) --------------------------------

-- name: browse_workflows
-- One page of workflows, newest first, after the keyset ($6 created_at, $7 id) of the previous
-- page's last row. $3 is a LIKE pattern (an escaped id prefix followed by %). The order is the
-- one of the created_at, status and workflow_type indexes (created_at DESC, id).
SELECT * FROM durable_workflow_instances
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR workflow_type = $2)
  AND ($3::text IS NULL OR id LIKE $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::timestamptz IS NULL OR created_at < $6 OR (created_at = $6 AND id > $7::text))
ORDER BY created_at DESC, id
LIMIT $8;

-- name: count_workflows
-- Workflows per status ($5: the statuses) under the browse filters, each count stopping at $6
-- rows (NULL: exact), so that a status with millions of rows costs no more than the cap.
SELECT s.status, (
    SELECT count(*) FROM (
        SELECT 1 FROM durable_workflow_instances w
        WHERE w.status = s.status
          AND ($1::text IS NULL OR w.workflow_type = $1)
          AND ($2::text IS NULL OR w.id LIKE $2)
          AND ($3::timestamptz IS NULL OR w.created_at >= $3)
          AND ($4::timestamptz IS NULL OR w.created_at < $4)
        LIMIT $6::bigint
    ) AS upto
) AS n
FROM unnest($5::text[]) AS s(status);

-- name: workflow_tasks
-- The tasks of one workflow, oldest first: live ones only unless $2.
SELECT * FROM durable_task_queue
WHERE workflow_id = $1 AND ($2 OR status IN ('pending', 'claimed'))
ORDER BY created_at, id
LIMIT $3;

-- name: browse_dead_letters
-- One page of dead-lettered tasks, newest first (dead_at DESC, id: the dead_at index), after
-- the keyset ($3 dead_at, $4 id); $2 is matched case-insensitively anywhere in last_error.
SELECT * FROM durable_dead_letter_queue
WHERE ($1::text IS NULL OR activity_type = $1)
  AND ($2::text IS NULL OR strpos(lower(COALESCE(last_error, '')), lower($2)) > 0)
  AND ($3::timestamptz IS NULL OR dead_at < $3 OR (dead_at = $3 AND id > $4::uuid))
ORDER BY dead_at DESC, id
LIMIT $5;

-- name: list_breakers
SELECT * FROM durable_circuit_breaker_state ORDER BY key;

-- name: ask_query
-- A query for workflow $2 (its type read from the row), answered by a worker; $1 the id
-- the caller already waits on. No row when the workflow does not exist.
INSERT INTO durable_workflow_queries (id, workflow_id, workflow_type, name, arg, created_at, deadline_at)
SELECT $1, w.id, w.workflow_type, $3, $4::jsonb, $5, $6
FROM durable_workflow_instances w WHERE w.id = $2
RETURNING workflow_type;

-- name: claim_queries
-- Up to $3 pending queries of workflow types $2 for worker $1, oldest first.
WITH next AS (
    SELECT id FROM durable_workflow_queries
    WHERE status = 'pending' AND workflow_type = ANY($2::text[]) AND deadline_at > $4
    ORDER BY created_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE durable_workflow_queries q
SET status = 'claimed', claimed_by = $1, claimed_at = $4
FROM next WHERE q.id = next.id
RETURNING q.id, q.workflow_id, q.workflow_type, q.name, q.arg;

-- name: answer_query
-- Worker $2's answer to query $1 it claimed: status $3 (answered | failed), $4 result, $5 error.
UPDATE durable_workflow_queries
SET status = $3, result = $4::jsonb, error = $5::jsonb, answered_at = $6
WHERE id = $1 AND claimed_by = $2 AND status = 'claimed'
RETURNING id;

-- name: query_outcome
SELECT status, result, error FROM durable_workflow_queries WHERE id = $1;

-- name: drop_query
DELETE FROM durable_workflow_queries WHERE id = $1;

-- name: sweep_queries
-- Queries whose caller is gone (past their deadline by $2 seconds), in a bounded batch.
DELETE FROM durable_workflow_queries
WHERE id IN (SELECT id FROM durable_workflow_queries WHERE deadline_at < $1::timestamptz - make_interval(secs => $2) LIMIT $3);

-- name: served_types
-- What the active workers serve (a draining, lost or stopped worker claims nothing new).
SELECT DISTINCT 'activity' AS kind, unnest(activity_types) AS type FROM durable_workers WHERE status = 'active'
UNION
SELECT DISTINCT 'workflow', unnest(workflow_types) FROM durable_workers WHERE status = 'active';

-- name: workflow_waiting_types
-- The types workflow $1's pending tasks wait for a worker of: its decision's, its steps'.
SELECT DISTINCT kind, activity_type AS type FROM durable_task_queue
WHERE workflow_id = $1 AND status = 'pending' AND kind IN ('activity', 'workflow');

-- name: unstarted_decisions
-- Decisions no worker took yet (attempt 0: never claimed, not a blocked one's retry) that were
-- due before $1: past the workflow schedule-to-start timeout.
SELECT id, workflow_id, activity_type, visible_at FROM durable_task_queue
WHERE status = 'pending' AND kind = 'workflow' AND attempt = 0 AND visible_at < $1
ORDER BY visible_at
LIMIT $2;

-- name: fail_unstarted_decision
UPDATE durable_task_queue
SET status = 'failed', last_error = $2, completed_at = $3
WHERE id = $1 AND status = 'pending' AND attempt = 0;
