-- Batched workflow writes (workflow_batches.py): many workflows' step outcomes and decisions in
-- a few statements. Named queries, loaded by queries.py.

-- name: lock_workflows_of_tasks
-- The lock order of every write path, for a batch: the workflows of tasks $1, locked in id
-- order (two batches that share workflows cannot deadlock), each with the task it was found
-- by (a workflow with two tasks here comes twice). Runs as its own statement so the next
-- one's snapshot sees what the transactions it waited for wrote. The rows are what a decision
-- that follows a completion needs; the input, result and error stay unread (NULL).
SELECT t.id AS task_id, w.id, w.workflow_type, w.status, NULL AS input, NULL AS result, NULL AS error,
       w.last_event_seq, w.decided_through_seq, w.created_at, w.updated_at, w.started_at, w.completed_at,
       w.trace_id, w.span_id, w.blocked, w.cancel_requested_at, w.pinned, w.sticky_worker_id,
       w.decision_seen_seq, w.parent_workflow_id, w.parent_close_policy, w.run_number, w.history_bytes,
       w.history_warned
FROM durable_task_queue t JOIN durable_workflow_instances w ON w.id = t.workflow_id
WHERE t.id = ANY($1::uuid[])
ORDER BY w.id
FOR UPDATE OF w;

-- name: complete_workflow_activities
-- Activities of workflows (locked by the caller) still held by worker $1 and their attempt,
-- completed in one statement: each task's result ($5, JSON text) on its row, an
-- ActivityCompleted event per completed step of a running workflow whose history has no
-- outcome of that step yet (numbered after the history, in the batch's order), and one decision
-- queued per workflow unless one waits or is being made (routed to the worker that keeps the
-- instance while it is active). A completion that carries a decision ($7: the history's last
-- event as its worker knew it, -1 for none; $8: the time its worker stamped the event with)
-- is `followed` when that decision can be applied instead of queueing one: it is the
-- workflow's only outcome here, the history was at $7 and decided through it, the worker is
-- the one that keeps the instance, the workflow runs unblocked, and no decision waits. Its
-- event then bears the worker's time (the time its decision saw).
-- A followed decision with $9 set is applied here too (the caller adds its steps after):
-- its $10 command events (given in $15-$18, numbered after the completion's) appended, the
-- workflow decided through them, kept by $11 (the worker that keeps the instance, or none),
-- and ended with status $12 and its result $13 or error $14 if the decision ended it (its
-- NOTIFY durable_workflows goes out on commit); $19: the bytes of those events. The others
-- the caller applies itself. Rows that come back completed; the caller finds out why the
-- others did not.
WITH done AS (
    UPDATE durable_task_queue t
    SET status = 'completed', result = c.result::jsonb, completed_at = $2
    FROM unnest($3::uuid[], $4::int[], $5::text[], $7::int[], $8::timestamptz[], $9::boolean[], $10::int[],
                $11::text[], $12::text[], $13::text[], $14::text[], $19::bigint[])
        WITH ORDINALITY AS c(id, attempt, result, follows_seq, stamped_at, applies, commands, sticky, ends,
                             ended_result, ended_error, command_bytes, ord)
    WHERE t.id = c.id AND t.status || '' = 'claimed' AND t.claimed_by = $1 AND t.attempt = c.attempt
      AND t.kind = 'activity' AND t.workflow_id IS NOT NULL
    RETURNING t.id, t.workflow_id, t.activity_id, t.activity_type, t.attempt, c.ord, c.follows_seq, c.stamped_at,
        c.applies, c.commands, c.sticky, c.ends, c.ended_result, c.ended_error, c.command_bytes,
        jsonb_build_object(
            'activity_id', t.activity_id, 'activity_type', t.activity_type,
            'result', CASE WHEN jsonb_typeof(c.result::jsonb) = 'null' THEN '{}'::jsonb ELSE c.result::jsonb END,
            'attempt', t.attempt) AS event_data,
        EXISTS (
            SELECT 1 FROM durable_workflow_events e
            WHERE e.workflow_id = t.workflow_id AND e.event_type IN ('ActivityCompleted', 'ActivityFailed')
              AND e.event_data->>'activity_id' = t.activity_id
        ) AS outcome_recorded
), outcomes AS (
    -- with the workflow as it stood before this statement (its row is locked by the caller):
    -- whether a decision that follows the completion can be taken
    SELECT d.*, row_number() OVER (PARTITION BY d.workflow_id ORDER BY d.ord) AS n,
           d.follows_seq >= 0 AND w.last_event_seq = d.follows_seq AND w.status = 'running'
               AND w.blocked IS NULL AND w.decided_through_seq = w.last_event_seq
               AND w.sticky_worker_id = $1 AS may_follow
    FROM done d JOIN durable_workflow_instances w ON w.id = d.workflow_id
    WHERE NOT d.outcome_recorded AND w.status NOT IN ('completed', 'failed', 'cancelled')
), counted AS (
    SELECT workflow_id, count(*) AS n, sum(octet_length(event_data::text)) AS bytes
    FROM outcomes GROUP BY workflow_id
), followed AS (
    SELECT o.id, o.workflow_id, o.applies, o.commands, o.sticky, o.ends, o.ended_result, o.ended_error,
           o.command_bytes
    FROM outcomes o JOIN counted c ON c.workflow_id = o.workflow_id
    WHERE o.may_follow AND c.n = 1
      AND NOT EXISTS (
          SELECT 1 FROM durable_task_queue q
          WHERE q.workflow_id = o.workflow_id AND q.kind = 'workflow' AND q.status IN ('pending', 'claimed'))
), applied AS (
    SELECT * FROM followed WHERE applies
), advanced AS (
    UPDATE durable_workflow_instances w
    SET last_event_seq = w.last_event_seq + c.n + COALESCE(f.commands, 0), updated_at = $2,
        history_bytes = w.history_bytes + c.bytes + COALESCE(f.command_bytes, 0),
        decided_through_seq = CASE WHEN f.applies THEN w.last_event_seq + c.n + f.commands
                                   ELSE w.decided_through_seq END,
        decision_seen_seq = CASE WHEN f.applies THEN w.last_event_seq + c.n ELSE w.decision_seen_seq END,
        sticky_worker_id = CASE WHEN f.applies THEN f.sticky ELSE w.sticky_worker_id END,
        status = COALESCE(f.ends, w.status),
        result = COALESCE(f.ended_result::jsonb, w.result),
        error = COALESCE(f.ended_error::jsonb, w.error),
        completed_at = CASE WHEN f.ends IS NOT NULL THEN $2 ELSE w.completed_at END
    FROM counted c LEFT JOIN applied f ON f.workflow_id = c.workflow_id
    WHERE w.id = c.workflow_id
    RETURNING w.id, w.workflow_type, w.last_event_seq - c.n - COALESCE(f.commands, 0) AS after_seq, w.trace_id,
        w.span_id, w.sticky_worker_id
), appended AS (
    INSERT INTO durable_workflow_events (workflow_id, sequence_num, event_type, event_data, created_at)
    SELECT o.workflow_id, a.after_seq + o.n, 'ActivityCompleted', o.event_data,
           CASE WHEN o.id IN (SELECT id FROM followed) THEN o.stamped_at ELSE $2 END
    FROM outcomes o JOIN advanced a ON a.id = o.workflow_id
    UNION ALL
    SELECT e.workflow_id, e.seq, e.event_type, e.event_data::jsonb, $2
    FROM unnest($15::text[], $16::int[], $17::text[], $18::text[]) AS e(workflow_id, seq, event_type, event_data)
    WHERE e.workflow_id IN (SELECT workflow_id FROM applied)
), woken AS (
    INSERT INTO durable_task_queue (kind, workflow_id, activity_type, visible_at, created_at, max_attempts, trace_id, span_id, sticky_to)
    SELECT 'workflow', a.id, a.workflow_type, $2, $2, $6, a.trace_id, a.span_id,
           (SELECT k.id FROM durable_workers k WHERE k.id = a.sticky_worker_id AND k.status = 'active')
    FROM advanced a
    WHERE a.id NOT IN (SELECT workflow_id FROM followed)
    ON CONFLICT (workflow_id) WHERE kind = 'workflow' AND status IN ('pending', 'claimed') DO NOTHING
)
SELECT d.id, d.workflow_id, d.activity_type, f.id IS NOT NULL AS followed,
       f.ends IS NOT NULL AND f.applies AS ended,
       CASE WHEN f.ends IS NOT NULL AND f.applies THEN pg_notify('durable_workflows', d.workflow_id) END AS notified
FROM done d LEFT JOIN followed f ON f.id = d.id;

-- name: lock_workflows_of_decisions
-- The workflows of decision tasks $1, locked in id order (every batch's lock order), each
-- with the task it was found by. A task of no workflow, or of one that is gone, has no row.
-- The workflow's input, result and error stay unread (NULL here): no decision needs them.
SELECT t.id AS decision_task_id, w.id, w.workflow_type, w.status, NULL AS input, NULL AS result, NULL AS error,
       w.last_event_seq, w.decided_through_seq, w.created_at, w.updated_at, w.started_at, w.completed_at,
       w.trace_id, w.span_id, w.blocked, w.cancel_requested_at, w.pinned, w.sticky_worker_id,
       w.decision_seen_seq, w.parent_workflow_id, w.parent_close_policy, w.run_number, w.history_bytes,
       w.history_warned
FROM durable_task_queue t JOIN durable_workflow_instances w ON w.id = t.workflow_id
WHERE t.id = ANY($1::uuid[])
ORDER BY w.id
FOR UPDATE OF w;

-- name: lock_owned_decisions
-- The fence for a batch of decisions: the tasks ($2 ids, $3 attempts) worker $1 still holds,
-- locked in id order, with their heartbeat details (a journal's count). The caller asks the
-- single fence why any other is missing.
SELECT t.id, t.kind, t.heartbeat_details FROM durable_task_queue t
JOIN unnest($2::uuid[], $3::int[]) AS c(id, attempt) ON t.id = c.id
WHERE t.status || '' = 'claimed' AND t.claimed_by = $1 AND t.attempt = c.attempt
ORDER BY t.id
FOR UPDATE OF t;

-- name: insert_decided_steps
-- The activities and timers of a batch of decisions, one row per element (ids chosen by the
-- caller); a (workflow, step id) that already has a live or completed task is skipped and does
-- not come back (a replayed command schedules nothing twice). An activity with `eager` set goes
-- in claimed by worker $2, its first attempt, while that worker is active (eager dispatch: the
-- deciding worker runs it at once, no claim); the rows come back as a claim's do, with
-- `eager` saying which were handed out.
INSERT INTO durable_task_queue (
    id, kind, workflow_id, activity_id, activity_type, input, priority, visible_at, max_attempts,
    retry_policy, schedule_to_start_timeout, start_to_close_timeout, heartbeat_timeout, created_at,
    trace_id, span_id, concurrency_key, concurrency_limit, status, claimed_by, claimed_at, heartbeat_at, attempt)
SELECT s.id, s.kind, s.workflow_id, s.activity_id, s.activity_type, s.input::jsonb, s.priority, s.visible_at,
       s.max_attempts, s.retry_policy::jsonb, s.schedule_to_start_timeout, s.start_to_close_timeout,
       s.heartbeat_timeout, $1, s.trace_id, s.span_id, s.concurrency_key, s.concurrency_limit,
       CASE WHEN s.eager AND k.active THEN 'claimed' ELSE 'pending' END,
       CASE WHEN s.eager AND k.active THEN $2::text END,
       CASE WHEN s.eager AND k.active THEN $1::timestamptz END,
       CASE WHEN s.eager AND k.active THEN $1::timestamptz END,
       CASE WHEN s.eager AND k.active THEN 1 ELSE 0 END
FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::timestamptz[],
            $11::int[], $12::text[], $13::float8[], $14::float8[], $15::float8[], $16::text[], $17::text[],
            $18::text[], $19::int[], $20::boolean[])
    AS s(id, kind, workflow_id, activity_id, activity_type, input, priority, visible_at, max_attempts,
         retry_policy, schedule_to_start_timeout, start_to_close_timeout, heartbeat_timeout, trace_id, span_id,
         concurrency_key, concurrency_limit, eager)
CROSS JOIN (SELECT EXISTS (SELECT 1 FROM durable_workers WHERE id = $2::text AND status = 'active') AS active) AS k
ON CONFLICT (workflow_id, kind, activity_id)
    WHERE workflow_id IS NOT NULL AND kind IN ('activity', 'timer') AND status IN ('pending', 'claimed', 'completed')
    DO NOTHING
RETURNING id, kind, workflow_id, activity_id, activity_type, input, attempt, max_attempts,
    priority, visible_at, claimed_by, heartbeat_timeout, start_to_close_timeout,
    heartbeat_details, trace_id, span_id, sticky_to, status = 'claimed' AS eager;

-- name: apply_decisions
-- A batch of applied decisions (workflows and decision tasks locked by the caller), in one
-- statement: each workflow's events ($13-$16) appended after $3 through $4, the workflow decided
-- through $4 (and running, or ended with status $9 and its result or error), its signals up to
-- what the worker saw ($5) delivered, the worker that keeps the instance ($6) recorded, and the
-- decision task ($7) completed with result $8. A workflow whose history is not at $3 is not
-- touched and does not come back (the caller then rolls back). An ended workflow's NOTIFY
-- durable_workflows goes out on commit. Decisions that must be followed by another (events
-- they did not see) are queued by the caller after this statement.
WITH d AS (
    SELECT * FROM unnest($2::text[], $3::int[], $4::int[], $5::int[], $6::text[], $7::uuid[], $8::text[],
                         $9::text[], $10::text[], $11::text[])
        AS d(id, after_seq, last_seq, seen, sticky, task_id, task_result, status, result, error)
), e AS (
    SELECT * FROM unnest($12::text[], $13::int[], $14::text[], $15::text[]) AS e(workflow_id, seq, event_type, event_data)
), sizes AS (
    SELECT workflow_id, sum(octet_length(event_data)) AS bytes FROM e GROUP BY workflow_id
), decided AS (
    UPDATE durable_workflow_instances w
    SET last_event_seq = d.last_seq, decided_through_seq = d.last_seq, updated_at = $1, blocked = NULL,
        history_bytes = w.history_bytes + COALESCE(s.bytes, 0),
        status = COALESCE(d.status, CASE WHEN w.status = 'pending' THEN 'running' ELSE w.status END),
        started_at = COALESCE(w.started_at, $1),
        result = COALESCE(d.result::jsonb, w.result),
        error = COALESCE(d.error::jsonb, w.error),
        completed_at = CASE WHEN d.status IS NOT NULL THEN $1 ELSE w.completed_at END,
        decision_seen_seq = d.seen, sticky_worker_id = d.sticky
    FROM d LEFT JOIN sizes s ON s.workflow_id = d.id
    WHERE w.id = d.id AND w.last_event_seq = d.after_seq
    RETURNING w.id, w.status
), appended AS (
    INSERT INTO durable_workflow_events (workflow_id, sequence_num, event_type, event_data, created_at)
    SELECT e.workflow_id, e.seq, e.event_type, e.event_data::jsonb, $1
    FROM e JOIN decided x ON x.id = e.workflow_id
), delivered AS (
    UPDATE durable_signals g SET delivered_at = $1
    FROM d JOIN decided x ON x.id = d.id
    WHERE g.workflow_id = d.id AND g.sequence_num <= d.seen AND g.delivered_at IS NULL
), finished AS (
    UPDATE durable_task_queue t SET status = 'completed', result = d.task_result::jsonb, completed_at = $1
    FROM d JOIN decided x ON x.id = d.id
    WHERE t.id = d.task_id
)
SELECT x.id, x.status IN ('completed', 'failed', 'cancelled') AS ended,
       CASE WHEN x.status IN ('completed', 'failed', 'cancelled') THEN pg_notify('durable_workflows', x.id) END AS notified
FROM decided x;

-- name: cancel_open_steps_of
-- cancel_open_steps for several workflows at once ($1), locked in id order.
UPDATE durable_task_queue t
SET status = 'cancelled', cancel_requested = true, completed_at = $2
FROM (
    SELECT id, status FROM durable_task_queue
    WHERE workflow_id = ANY($1::text[]) AND status IN ('pending', 'claimed')
    ORDER BY id
    FOR UPDATE
) AS was
WHERE t.id = was.id
RETURNING t.id, t.kind, t.activity_type, was.status AS was_status;

-- name: report_taken
-- Whether worker $2's report of task $1's attempt $3 was taken already (the task is done, by
-- this worker and attempt): the worker lost the answer and reports again. The workflow and the
-- time of that report's transaction, or no row.
SELECT workflow_id, completed_at FROM durable_task_queue
WHERE id = $1 AND claimed_by = $2 AND attempt = $3 AND status = 'completed' AND completed_at IS NOT NULL;

-- name: handed_at
-- The activities of workflow $1 handed to worker $2 at once (eager) by the transaction of time
-- $3 and still held on their first attempt: what a report's lost answer carried.
SELECT id, kind, workflow_id, activity_id, activity_type, input, attempt, max_attempts,
    priority, visible_at, claimed_by, heartbeat_timeout, start_to_close_timeout,
    heartbeat_details, trace_id, span_id, sticky_to
FROM durable_task_queue
WHERE workflow_id = $1 AND kind = 'activity' AND status = 'claimed' AND claimed_by = $2 AND attempt = 1
  AND created_at = $3 AND claimed_at = $3
ORDER BY id;

-- name: journal_markers
-- Journals of markers only (ctx.step), set-based: the events ($1 workflow ids, $2 sequence
-- numbers, $3 data) appended where each history ends ($4 workflow ids, $5 the last sequence
-- number each journal saw), each workflow running, and each journal's decision task ($6 ids)
-- kept with what its attempt's journals wrote ($7 attempts, $8 counts). The workflows whose
-- history was where the journal saw it come back (the caller holds their locks).
WITH ev AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) AS e(workflow_id, seq, data)
), sums AS (
    SELECT workflow_id, count(*)::int AS n, sum(octet_length(data)) AS bytes FROM ev GROUP BY workflow_id
), advanced AS (
    UPDATE durable_workflow_instances w
    SET last_event_seq = w.last_event_seq + s.n, updated_at = $9, history_bytes = w.history_bytes + s.bytes,
        blocked = NULL, status = CASE WHEN w.status = 'pending' THEN 'running' ELSE w.status END,
        started_at = COALESCE(w.started_at, $9)
    FROM sums s JOIN unnest($4::text[], $5::int[]) AS j(id, seen) ON j.id = s.workflow_id
    WHERE w.id = j.id AND w.last_event_seq = j.seen
    RETURNING w.id
), appended AS (
    INSERT INTO durable_workflow_events (workflow_id, sequence_num, event_type, event_data, created_at)
    SELECT ev.workflow_id, ev.seq, 'MarkerRecorded', ev.data::jsonb, $9
    FROM ev WHERE ev.workflow_id IN (SELECT id FROM advanced)
), kept AS (
    UPDATE durable_task_queue t
    SET heartbeat_details = jsonb_build_object('attempt', k.attempt, 'journalled', k.journalled), heartbeat_at = $9
    FROM unnest($6::uuid[], $7::int[], $8::int[]) AS k(id, attempt, journalled)
    WHERE t.id = k.id
)
SELECT id FROM advanced;
