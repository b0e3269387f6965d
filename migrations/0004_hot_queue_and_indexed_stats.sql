-- 0004: a HOT-friendly task queue, and the statistics read every few seconds on indexes.
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
