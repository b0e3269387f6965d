-- 0001: the seven tables of the durable engine.
--
-- Column names and meanings are a public contract: operators query these tables directly
-- (see README "Operating it with SQL"). Add columns in later migrations; never rename.

-- Workflow instances ------------------------------------------------------------------------
CREATE TABLE durable_workflow_instances (
    id                  text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
    workflow_type       text        NOT NULL CHECK (length(workflow_type) BETWEEN 1 AND 255),
    status              text        NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    input               jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(input) = 'object'),
    result              jsonb       CHECK (result IS NULL OR jsonb_typeof(result) = 'object'),
    error               jsonb,
    -- the highest sequence_num in durable_workflow_events for this workflow
    last_event_seq      integer     NOT NULL DEFAULT 0 CHECK (last_event_seq >= 0),
    -- events up to this sequence_num have had their workflow decision applied
    decided_through_seq integer     NOT NULL DEFAULT 0 CHECK (decided_through_seq >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    completed_at        timestamptz,
    -- OpenTelemetry context of the workflow's start (W3C ids, lowercase hex); NULL if untraced
    trace_id            text        CHECK (trace_id ~ '^[0-9a-f]{32}$'),
    span_id             text        CHECK (span_id ~ '^[0-9a-f]{16}$'),
    CHECK (decided_through_seq <= last_event_seq),
    CHECK ((status IN ('completed', 'failed', 'cancelled')) = (completed_at IS NOT NULL))
);

CREATE INDEX durable_workflow_instances_active_idx
    ON durable_workflow_instances (created_at DESC) WHERE status IN ('pending', 'running');
CREATE INDEX durable_workflow_instances_type_idx
    ON durable_workflow_instances (workflow_type, created_at DESC);

-- Event log: every step of every workflow -----------------------------------------------------
CREATE TABLE durable_workflow_events (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id  text        NOT NULL REFERENCES durable_workflow_instances (id) ON DELETE CASCADE,
    sequence_num integer     NOT NULL CHECK (sequence_num >= 1),
    event_type   text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 255),
    event_data   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workflow_id, sequence_num)
);

-- Task queue: activity tasks, workflow (decision) tasks and durable timers ---------------------
CREATE TABLE durable_task_queue (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    kind            text        NOT NULL DEFAULT 'activity'
                    CHECK (kind IN ('activity', 'workflow', 'timer')),
    workflow_id     text        REFERENCES durable_workflow_instances (id) ON DELETE CASCADE,
    activity_id     text        CHECK (activity_id IS NULL OR length(activity_id) BETWEEN 1 AND 255),
    -- the activity type; for workflow tasks the workflow type; for timers 'timer'
    activity_type   text        NOT NULL CHECK (length(activity_type) BETWEEN 1 AND 255),
    input           jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(input) = 'object'),
    result          jsonb,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'claimed', 'completed', 'failed', 'dead', 'cancelled')),
    priority        integer     NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    visible_at      timestamptz NOT NULL DEFAULT now(),
    -- claims so far; the attempt a claim hands out is attempt + 1. Only ever grows.
    attempt         integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts    integer     NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    -- claims handed back on purpose (a draining worker): they do not count as failed attempts
    release_count   integer     NOT NULL DEFAULT 0 CHECK (release_count >= 0),
    -- claims taken back by the reaper from workers that stopped heartbeating (poison guard)
    reclaim_count   integer     NOT NULL DEFAULT 0 CHECK (reclaim_count >= 0),
    retry_policy    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    claimed_by      text,
    claimed_at      timestamptz,
    heartbeat_at    timestamptz,
    heartbeat_details jsonb,
    cancel_requested boolean    NOT NULL DEFAULT false,
    last_error      text,
    error_history   jsonb       NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(error_history) = 'array'),
    -- timeouts, in seconds; NULL means none
    schedule_to_start_timeout double precision CHECK (schedule_to_start_timeout > 0),
    start_to_close_timeout    double precision CHECK (start_to_close_timeout > 0),
    heartbeat_timeout         double precision CHECK (heartbeat_timeout > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    -- OpenTelemetry parent context of the task's work (its workflow's, or the enqueuer's)
    trace_id        text        CHECK (trace_id ~ '^[0-9a-f]{32}$'),
    span_id         text        CHECK (span_id ~ '^[0-9a-f]{16}$'),
    CHECK (status <> 'claimed' OR (claimed_by IS NOT NULL AND claimed_at IS NOT NULL)),
    CHECK (kind = 'activity' OR workflow_id IS NOT NULL),
    CHECK (release_count <= attempt)
);

-- The claim path: pending tasks of some types, by priority, then age of visibility.
CREATE INDEX durable_task_queue_claim_idx
    ON durable_task_queue (kind, activity_type, priority DESC, visible_at)
    WHERE status = 'pending';
-- The reaper: claimed tasks by heartbeat age.
CREATE INDEX durable_task_queue_claimed_idx
    ON durable_task_queue (heartbeat_at) WHERE status = 'claimed';
CREATE INDEX durable_task_queue_workflow_idx
    ON durable_task_queue (workflow_id) WHERE workflow_id IS NOT NULL;
-- A step of a workflow is scheduled once: one live task per (workflow, activity or timer id).
CREATE UNIQUE INDEX durable_task_queue_step_once_idx
    ON durable_task_queue (workflow_id, kind, activity_id)
    WHERE kind IN ('activity', 'timer') AND status IN ('pending', 'claimed', 'completed');
-- At most one workflow task waits per workflow (a running one may have one successor).
CREATE UNIQUE INDEX durable_task_queue_one_pending_decision_idx
    ON durable_task_queue (workflow_id) WHERE kind = 'workflow' AND status = 'pending';

-- Dead-letter queue ------------------------------------------------------------------------------
CREATE TABLE durable_dead_letter_queue (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    original_task_id uuid        NOT NULL UNIQUE REFERENCES durable_task_queue (id) ON DELETE CASCADE,
    workflow_id      text        REFERENCES durable_workflow_instances (id) ON DELETE CASCADE,
    activity_id      text,
    activity_type    text        NOT NULL,
    input            jsonb       NOT NULL,
    attempts         integer     NOT NULL CHECK (attempts >= 0),
    last_error       text,
    error_history    jsonb       NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(error_history) = 'array'),
    reason           text        NOT NULL
                     CHECK (reason IN ('exhausted', 'non_retryable', 'poison', 'schedule_to_start_timeout')),
    dead_at          timestamptz NOT NULL DEFAULT now(),
    -- set it (UPDATE ... SET requeued_at = NOW()) to put a fresh task on the queue
    requeued_at      timestamptz,
    requeue_count    integer     NOT NULL DEFAULT 0 CHECK (requeue_count >= 0),
    requeued_task_id uuid        REFERENCES durable_task_queue (id) ON DELETE SET NULL
);
CREATE INDEX durable_dead_letter_queue_dead_at_idx ON durable_dead_letter_queue (dead_at DESC);

-- Requeue is a trigger, so the documented SQL works with or without a control plane running,
-- and exactly one fresh task is created per change of requeued_at, in the same transaction.
CREATE FUNCTION durable_dlq_requeue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    original durable_task_queue%ROWTYPE;
    fresh_id uuid;
BEGIN
    IF NEW.requeued_at IS NULL OR NEW.requeued_at IS NOT DISTINCT FROM OLD.requeued_at THEN
        RETURN NEW;
    END IF;
    SELECT * INTO original FROM durable_task_queue WHERE id = NEW.original_task_id;
    IF original.kind = 'activity' AND original.workflow_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM durable_task_queue
        WHERE workflow_id = original.workflow_id AND kind = 'activity'
          AND activity_id = original.activity_id AND status IN ('pending', 'claimed', 'completed')
    ) THEN
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

CREATE TRIGGER durable_dlq_requeue
    BEFORE UPDATE OF requeued_at ON durable_dead_letter_queue
    FOR EACH ROW EXECUTE FUNCTION durable_dlq_requeue();

-- Workers ------------------------------------------------------------------------------------------
CREATE TABLE durable_workers (
    id                text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
    worker_group      text        NOT NULL DEFAULT 'default',
    activity_types    text[]      NOT NULL DEFAULT '{}',
    workflow_types    text[]      NOT NULL DEFAULT '{}',
    max_concurrency   integer     NOT NULL DEFAULT 10 CHECK (max_concurrency >= 1),
    current_load      integer     NOT NULL DEFAULT 0 CHECK (current_load >= 0),
    status            text        NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'draining', 'stopped', 'lost')),
    -- set by a drain: a worker that comes back from 'lost' returns to 'draining', not 'active'
    drain_requested   boolean     NOT NULL DEFAULT false,
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz NOT NULL DEFAULT now(),
    stopped_at        timestamptz,
    hostname          text,
    version           text
);
CREATE INDEX durable_workers_heartbeat_idx ON durable_workers (last_heartbeat_at) WHERE status IN ('active', 'draining');

-- Signals ------------------------------------------------------------------------------------------
CREATE TABLE durable_signals (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id  text        NOT NULL REFERENCES durable_workflow_instances (id) ON DELETE CASCADE,
    signal_type  text        NOT NULL CHECK (length(signal_type) BETWEEN 1 AND 255),
    payload      jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(payload) = 'object'),
    -- the durable_workflow_events.sequence_num that carries this signal to the workflow
    sequence_num integer,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX durable_signals_workflow_idx ON durable_signals (workflow_id, id);

-- Circuit breakers, one row per key (an activity type) -----------------------------------------------
CREATE TABLE durable_circuit_breaker_state (
    key                  text        PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    state                text        NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    failure_count        integer     NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    success_count        integer     NOT NULL DEFAULT 0 CHECK (success_count >= 0),
    half_open_in_flight  integer     NOT NULL DEFAULT 0 CHECK (half_open_in_flight >= 0),
    window_started_at    timestamptz,
    opened_at            timestamptz,
    failure_threshold    integer     NOT NULL DEFAULT 5 CHECK (failure_threshold >= 1),
    window_seconds       double precision NOT NULL DEFAULT 60 CHECK (window_seconds > 0),
    reset_timeout_seconds double precision NOT NULL DEFAULT 30 CHECK (reset_timeout_seconds > 0),
    half_open_max_trials integer     NOT NULL DEFAULT 1 CHECK (half_open_max_trials >= 1),
    success_threshold    integer     NOT NULL DEFAULT 1 CHECK (success_threshold >= 1),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'open') <= (opened_at IS NOT NULL))
);

-- Push dispatch: every statement that inserts tasks tells listeners which types have work
-- (NOTIFY is delivered on commit and de-duplicated per transaction). Control planes wake their
-- long-polling workers at once. Updates that make tasks pending again (reclaim, hand-back)
-- notify explicitly; polling stays as the fallback for tasks that become visible later.
CREATE FUNCTION durable_notify_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    types text;
BEGIN
    -- "kind:type=count,...": a control plane wakes that many waiting claims of each type
    SELECT string_agg(key || '=' || n, ',') INTO types
    FROM (SELECT kind || ':' || activity_type AS key, count(*) AS n
          FROM inserted WHERE status = 'pending' GROUP BY 1) AS arrived;
    IF types IS NOT NULL THEN
        PERFORM pg_notify('durable_tasks', left(types, 7900));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER durable_notify_tasks_insert
    AFTER INSERT ON durable_task_queue REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION durable_notify_tasks();
