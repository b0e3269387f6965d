-- 0005: schedules. One row per schedule: a cron expression in a time zone, or a fixed
-- interval, that starts a workflow (or enqueues an activity) with a given input and an id
-- derived from the tick ("<schedule id>-<tick as %Y%m%dT%H%M%SZ>").
--
-- Every control-plane replica runs the schedule loop; each pass claims the rows whose
-- `wake_at` has come with FOR UPDATE SKIP LOCKED, fires their due ticks and moves
-- `next_tick` on in the same short transaction, so each tick fires once across replicas.
--
--   SELECT id, target_type, coalesce(cron, interval_seconds || ' s') AS spec, time_zone,
--          paused, next_tick, last_run_id FROM durable_schedules ORDER BY id;
--
-- The table is one row per schedule: `recent_fires` keeps only the last few fires (the
-- control plane trims it to 20 entries); totals are counters.
CREATE TABLE durable_schedules (
    id                     text        PRIMARY KEY CHECK (id <> '' AND length(id) <= 200),
    action                 text        NOT NULL CHECK (action IN ('workflow', 'activity')),
    target_type            text        NOT NULL CHECK (target_type <> ''),
    input                  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    cron                   text,
    interval_seconds       double precision CHECK (interval_seconds IS NULL OR interval_seconds >= 1),
    time_zone              text        NOT NULL DEFAULT 'UTC',
    overlap_policy         text        NOT NULL DEFAULT 'skip' CHECK (overlap_policy IN
                               ('skip', 'buffer_one', 'allow_all', 'cancel_previous', 'terminate_previous')),
    catchup_window_seconds double precision NOT NULL DEFAULT 60 CHECK (catchup_window_seconds >= 0),
    jitter_seconds         double precision NOT NULL DEFAULT 0 CHECK (jitter_seconds >= 0),
    start_at               timestamptz NOT NULL,
    end_at                 timestamptz,
    paused                 boolean     NOT NULL DEFAULT false,
    note                   text        NOT NULL DEFAULT '',
    -- The next tick (its nominal time: the run's id derives from it) and when it fires
    -- (the tick plus its jitter); NULL once the schedule is past end_at.
    next_tick              timestamptz,
    next_fire_at           timestamptz,
    -- When the loop looks at the row next: next_fire_at, or sooner while a buffered tick
    -- waits for the previous run to end.
    wake_at                timestamptz,
    buffered_tick          timestamptz,
    last_run_id            text,
    last_tick              timestamptz,
    last_fired_at          timestamptz,
    started_count          bigint      NOT NULL DEFAULT 0,
    skipped_count          bigint      NOT NULL DEFAULT 0,
    missed_count           bigint      NOT NULL DEFAULT 0,
    existing_count         bigint      NOT NULL DEFAULT 0,
    recent_fires           jsonb       NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(recent_fires) = 'array'),
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    CHECK ((cron IS NULL) <> (interval_seconds IS NULL)),
    CHECK (end_at IS NULL OR end_at > start_at),
    CHECK (overlap_policy NOT IN ('cancel_previous', 'terminate_previous') OR action = 'workflow'),
    CHECK ((next_tick IS NULL) = (next_fire_at IS NULL))
);

-- The loop's claim: due rows of schedules that run.
CREATE INDEX durable_schedules_wake_idx ON durable_schedules (wake_at) WHERE NOT paused AND wake_at IS NOT NULL;
