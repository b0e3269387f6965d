-- 0005: retention. Finished workflows, standalone tasks, old worker rows and resolved dead
-- letters are deleted after their retention (durable.controlplane.retention); a workflow can
-- be pinned to be kept for ever. The indexes below are what the deletions walk: the
-- retention candidates themselves, and the foreign keys a cascade checks (without an index on
-- durable_dead_letter_queue.workflow_id and .requeued_task_id, every deleted workflow and
-- task scanned the whole dead-letter queue).
--
-- The indexes are built in this migration's transaction, which blocks writes to these tables
-- while they build: with large tables, upgrade at a quiet moment.

ALTER TABLE durable_workflow_instances ADD COLUMN pinned boolean NOT NULL DEFAULT false;

-- Retention candidates: finished, not pinned, oldest first per final status.
CREATE INDEX durable_workflow_instances_retention_idx
    ON durable_workflow_instances (status, completed_at)
    WHERE completed_at IS NOT NULL AND NOT pinned;

-- Finished standalone activities (the steps of workflows go with their workflow).
CREATE INDEX durable_task_queue_standalone_finished_idx
    ON durable_task_queue (completed_at)
    WHERE workflow_id IS NULL AND status IN ('completed', 'failed', 'dead', 'cancelled');

-- Foreign keys of the dead-letter queue (original_task_id is UNIQUE, so indexed already).
CREATE INDEX durable_dead_letter_queue_workflow_idx
    ON durable_dead_letter_queue (workflow_id) WHERE workflow_id IS NOT NULL;
CREATE INDEX durable_dead_letter_queue_requeued_task_idx
    ON durable_dead_letter_queue (requeued_task_id) WHERE requeued_task_id IS NOT NULL;
-- Resolved (requeued) entries, by when they were resolved.
CREATE INDEX durable_dead_letter_queue_resolved_idx
    ON durable_dead_letter_queue (requeued_at) WHERE requeued_at IS NOT NULL;

-- Stopped and lost workers, by their last sign of life.
CREATE INDEX durable_workers_gone_idx
    ON durable_workers (last_heartbeat_at) WHERE status IN ('stopped', 'lost');

-- Requeue, exactly once for every entry: a standalone entry whose last requeued task is still
-- live (pending, claimed) or completed is refused as a workflow step's always was (the row
-- lock of the UPDATE serialises concurrent requeues, and the second sees the first's task).
-- An activity of a workflow that has ended is refused too: nothing would take its result.
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
        trace_id, span_id)
    VALUES (
        original.kind, original.workflow_id, original.activity_id, original.activity_type,
        original.input, original.priority, original.max_attempts, original.retry_policy,
        original.schedule_to_start_timeout, original.start_to_close_timeout,
        original.heartbeat_timeout, NEW.requeued_at, NEW.requeued_at, original.trace_id, original.span_id)
    RETURNING id INTO fresh_id;
    NEW.requeue_count := OLD.requeue_count + 1;
    NEW.requeued_task_id := fresh_id;
    RETURN NEW;
END;
$$;

-- ----------------------------------------------------------------------------------------------

-- And a HOT-friendly task queue, and the statistics read every few seconds on indexes.
--
-- Heartbeats: an UPDATE is HOT (no new index entries, the old version pruned on the page) only
-- when no indexed column changes and the page has room. The seed indexed heartbeat_at (the
-- reaper's index), so every heartbeat wrote an entry into every index of the queue, and with
-- fillfactor 100 there was no room anyway: 2,000 running tasks x 30 heartbeat rounds were
-- 62,000 updates, none HOT. The claimed index is keyed by what does not change while a task
-- runs (kind, type, claimed_at), and pages keep 30% free for new versions. (The fillfactor
-- applies to pages written from now on; VACUUM FULL or pg_repack rewrites old ones.)
--
-- Statistics: queue_stats, worker_counts, dead_letter_counts and list_workflows run every few
-- seconds per replica, per operator poll and per KEDA call. They read only live rows through
-- partial indexes, and list_workflows pages through an index in its ORDER BY.
--
-- The indexes are built in this migration's transaction, which blocks writes to these tables
-- while they build: with large tables, upgrade at a quiet moment.

ALTER TABLE durable_task_queue SET (fillfactor = 70);

DROP INDEX durable_task_queue_claimed_idx;
CREATE INDEX durable_task_queue_claimed_idx
    ON durable_task_queue (kind, activity_type, claimed_at) WHERE status = 'claimed';

-- list_workflows, one index per filter combination, each in the listing's order.
CREATE INDEX durable_workflow_instances_created_idx
    ON durable_workflow_instances (created_at DESC, id);
CREATE INDEX durable_workflow_instances_status_created_idx
    ON durable_workflow_instances (status, created_at DESC, id);
DROP INDEX durable_workflow_instances_type_idx;
CREATE INDEX durable_workflow_instances_type_idx
    ON durable_workflow_instances (workflow_type, created_at DESC, id);
CREATE INDEX durable_workflow_instances_type_status_idx
    ON durable_workflow_instances (workflow_type, status, created_at DESC, id);

-- worker_counts: workers that are not stopped (stopped ones are deleted by retention).
CREATE INDEX durable_workers_status_idx ON durable_workers (status) WHERE status <> 'stopped';

-- dead_letter_counts: unresolved entries only.
CREATE INDEX durable_dead_letter_queue_unresolved_idx
    ON durable_dead_letter_queue (activity_type) WHERE requeued_at IS NULL;

-- Push dispatch with due times: inserted tasks that are not visible yet (a start delay, a
-- timer) are announced with when they will be, "kind:type=count@<unix time>", so control
-- planes wake their waiting claims (and the timer firer) then, instead of at the next poll.
CREATE OR REPLACE FUNCTION durable_notify_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    types text;
BEGIN
    SELECT string_agg(item, ',') INTO types
    FROM (
        SELECT kind || ':' || activity_type || '=' || count(*) AS item
        FROM inserted WHERE status = 'pending' AND visible_at <= now() + interval '5 milliseconds'
        GROUP BY kind, activity_type
        UNION ALL
        SELECT kind || ':' || activity_type || '=' || count(*) || '@' || extract(epoch FROM visible_at)
        FROM inserted WHERE status = 'pending' AND visible_at > now() + interval '5 milliseconds'
        GROUP BY kind, activity_type, visible_at
    ) AS arrived;
    IF types IS NOT NULL THEN
        PERFORM pg_notify('durable_tasks', left(types, 7900));
    END IF;
    RETURN NULL;
END;
$$;
