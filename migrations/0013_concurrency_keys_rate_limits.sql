-- 0013: concurrency keys and rate limits (issue 15).
--
-- Concurrency keys: an activity task may carry a key (a customer id, say) and a limit; it is
-- handed out only while fewer than that many tasks of its key are claimed, cluster-wide. The
-- count is derived from the claimed rows themselves (durable_task_queue_key_running_idx), so a
-- task that completes, fails, is taken back by the reaper, handed back or dead-lettered frees
-- its slot with the same write that ends its claim: nothing to leak, no key table to keep. A
-- claim serialises per key with a transaction-scoped advisory lock (pg_try_advisory_xact_lock,
-- SKIP-LOCKED-like: a key another claimer holds is passed over) and counts in a statement that
-- starts after the lock is held, so it sees every claim committed before.
--
-- The claim index now holds unkeyed pending tasks only: the claim of unkeyed work reads
-- exactly what it read before and never walks past keyed tasks. Keyed pending tasks have their
-- own index, in (type, key) order, which the keyed claim walks key by key (round robin).
--
-- Rate limits: a token bucket per activity type in durable_rate_limits (rate per second,
-- burst, tokens left, when they were counted), refilled and spent under the row's lock.
--
-- The claim index is rebuilt and the new indexes built in this migration's transaction, which
-- blocks writes to the queue while they build: with a large queue, upgrade at a quiet moment.

ALTER TABLE durable_task_queue
    ADD COLUMN concurrency_key   text    CHECK (concurrency_key IS NULL OR length(concurrency_key) BETWEEN 1 AND 255),
    ADD COLUMN concurrency_limit integer CHECK (concurrency_limit IS NULL OR concurrency_limit >= 1),
    ADD CONSTRAINT durable_task_queue_key_has_limit CHECK ((concurrency_key IS NULL) = (concurrency_limit IS NULL));

DROP INDEX durable_task_queue_claim_idx;
CREATE INDEX durable_task_queue_claim_idx
    ON durable_task_queue (kind, activity_type, priority DESC, visible_at)
    WHERE status = 'pending' AND concurrency_key IS NULL;
CREATE INDEX durable_task_queue_keyed_claim_idx
    ON durable_task_queue (kind, activity_type, concurrency_key, priority DESC, visible_at)
    WHERE status = 'pending' AND concurrency_key IS NOT NULL;
CREATE INDEX durable_task_queue_key_running_idx
    ON durable_task_queue (concurrency_key)
    WHERE status = 'claimed' AND concurrency_key IS NOT NULL;

-- A workflow start may carry a key and a limit too: at most that many workflows of the key
-- run (started, not ended) at once; the others stay pending, their first decision task (which
-- carries the key) waiting in the keyed index. Claiming that task starts the workflow in the
-- same statement and takes the key off the task: its retries are not held back again.
ALTER TABLE durable_workflow_instances
    ADD COLUMN concurrency_key   text    CHECK (concurrency_key IS NULL OR length(concurrency_key) BETWEEN 1 AND 255),
    ADD COLUMN concurrency_limit integer CHECK (concurrency_limit IS NULL OR concurrency_limit >= 1),
    ADD CONSTRAINT durable_workflow_instances_key_has_limit
        CHECK ((concurrency_key IS NULL) = (concurrency_limit IS NULL));
CREATE INDEX durable_workflow_instances_key_running_idx
    ON durable_workflow_instances (concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;

CREATE FUNCTION durable_notify_workflow_key_freed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('durable_tasks', 'workflow:' || NEW.workflow_type || '=1');
    RETURN NULL;
END;
$$;

CREATE TRIGGER durable_notify_workflow_key_freed
    AFTER UPDATE OF status ON durable_workflow_instances
    FOR EACH ROW
    WHEN (OLD.status = 'running' AND NEW.status <> 'running' AND OLD.concurrency_key IS NOT NULL)
    EXECUTE FUNCTION durable_notify_workflow_key_freed();

CREATE TABLE durable_rate_limits (
    -- the activity type whose starts are limited
    key        text             PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    -- starts per second, cluster-wide
    rate       double precision NOT NULL CHECK (rate > 0),
    -- the most starts at once after a quiet spell (the bucket's size)
    burst      double precision NOT NULL CHECK (burst >= 1),
    -- tokens left at updated_at; one start spends one
    tokens     double precision NOT NULL CHECK (tokens >= 0),
    updated_at timestamptz      NOT NULL DEFAULT now(),
    created_at timestamptz      NOT NULL DEFAULT now(),
    CHECK (tokens <= burst)
);

-- A keyed task whose claim ends (completed, failed, retried, taken back, handed back,
-- cancelled) frees a slot of its key: claims waiting on its type are woken to take it, not at
-- their next fallback re-check. The WHEN clause keeps every other update free of the trigger.
CREATE FUNCTION durable_notify_key_freed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('durable_tasks', NEW.kind || ':' || NEW.activity_type || '=1');
    RETURN NULL;
END;
$$;

CREATE TRIGGER durable_notify_key_freed
    AFTER UPDATE OF status ON durable_task_queue
    FOR EACH ROW
    WHEN (OLD.status = 'claimed' AND NEW.status <> 'claimed' AND OLD.concurrency_key IS NOT NULL)
    EXECUTE FUNCTION durable_notify_key_freed();

-- A requeued dead letter keeps its concurrency key and limit.
CREATE OR REPLACE FUNCTION durable_dlq_requeue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    original durable_task_queue%ROWTYPE;
    fresh_id uuid;
    workflow_status text;
BEGIN
    IF NEW.requeued_at IS NULL OR NEW.requeued_at IS NOT DISTINCT FROM OLD.requeued_at THEN
        RETURN NEW;
    END IF;
    SELECT * INTO original FROM durable_task_queue WHERE id = NEW.original_task_id;
    IF original.workflow_id IS NOT NULL THEN
        SELECT status INTO workflow_status FROM durable_workflow_instances WHERE id = original.workflow_id;
        IF workflow_status IN ('completed', 'failed', 'cancelled') THEN
            RAISE EXCEPTION 'dead-letter entry % belongs to workflow % which has ended (%); it cannot be requeued',
                    NEW.id, original.workflow_id, workflow_status
                USING HINT = 'start a new workflow, or delete the entry',
                      ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
    END IF;
    IF (original.kind = 'activity' AND original.workflow_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM durable_task_queue
        WHERE workflow_id = original.workflow_id AND kind = 'activity'
          AND activity_id = original.activity_id AND status IN ('pending', 'claimed', 'completed')
    )) OR (OLD.requeued_task_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM durable_task_queue
        WHERE id = OLD.requeued_task_id AND status IN ('pending', 'claimed', 'completed')
    )) THEN
        RAISE EXCEPTION 'dead-letter entry % was already requeued and its task is still live or completed', NEW.id
            USING HINT = 'wait for the requeued task to finish or fail before requeueing again',
                  ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO durable_task_queue (
        kind, workflow_id, activity_id, activity_type, input, priority, max_attempts, retry_policy,
        schedule_to_start_timeout, start_to_close_timeout, heartbeat_timeout, visible_at, created_at,
        trace_id, span_id, concurrency_key, concurrency_limit)
    VALUES (
        original.kind, original.workflow_id, original.activity_id, original.activity_type,
        original.input, original.priority, original.max_attempts, original.retry_policy,
        original.schedule_to_start_timeout, original.start_to_close_timeout,
        original.heartbeat_timeout, NEW.requeued_at, NEW.requeued_at, original.trace_id, original.span_id,
        original.concurrency_key, original.concurrency_limit)
    RETURNING id INTO fresh_id;
    NEW.requeue_count := OLD.requeue_count + 1;
    NEW.requeued_task_id := fresh_id;
    RETURN NEW;
END;
$$;
