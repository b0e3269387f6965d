-- Bulk actions by filter (bulk.py). Named queries, loaded by queries.py. Each selection reads
-- one bounded batch in keyset order (oldest first) after the previous batch's last row; the
-- same WHERE counts a dry run.

-- name: bulk_select_workflows
-- Up to $10 workflows with a status in $1, after the keyset ($8 created_at, $9 id). $3 is a
-- LIKE pattern (an escaped id prefix and %), $6 matched case-insensitively in the error, $7:
-- leave out those whose cancel was already requested (a plain cancel would not change them);
-- $11: leave out pinned ones (delete).
SELECT id, created_at FROM durable_workflow_instances
WHERE status = ANY($1::text[])
  AND ($2::text IS NULL OR workflow_type = $2)
  AND ($3::text IS NULL OR id LIKE $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::text IS NULL OR strpos(lower(COALESCE(error::text, '')), lower($6)) > 0)
  AND (NOT $7::boolean OR cancel_requested_at IS NULL)
  AND (NOT $11::boolean OR NOT pinned)
  AND ($8::timestamptz IS NULL OR created_at > $8 OR (created_at = $8 AND id > $9::text))
ORDER BY created_at, id
LIMIT $10;

-- name: bulk_count_workflows
-- What bulk_select_workflows would take, all batches together.
SELECT count(*) FROM durable_workflow_instances
WHERE status = ANY($1::text[])
  AND ($2::text IS NULL OR workflow_type = $2)
  AND ($3::text IS NULL OR id LIKE $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::text IS NULL OR strpos(lower(COALESCE(error::text, '')), lower($6)) > 0)
  AND (NOT $7::boolean OR cancel_requested_at IS NULL)
  AND (NOT $8::boolean OR NOT pinned);

-- name: bulk_delete_workflows
-- The workflows of $1 that are still ended and not pinned, with their events, tasks, signals
-- and dead letters (ON DELETE CASCADE). SKIP LOCKED: one being changed now is left out.
WITH doomed AS (
    SELECT id FROM durable_workflow_instances
    WHERE id = ANY($1::text[]) AND status IN ('completed', 'failed', 'cancelled') AND NOT pinned
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM durable_workflow_instances w USING doomed WHERE w.id = doomed.id
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: bulk_select_dead_letters
-- Up to $8 dead-letter entries after the keyset ($6 dead_at, $7 id). $7: requeueable ones
-- only (not requeued yet; standalone, or of a workflow that has not ended).
SELECT d.id, d.dead_at FROM durable_dead_letter_queue d
WHERE ($1::text IS NULL OR d.activity_type = $1)
  AND ($2::timestamptz IS NULL OR d.dead_at >= $2)
  AND ($3::timestamptz IS NULL OR d.dead_at < $3)
  AND ($4::text IS NULL OR strpos(lower(COALESCE(d.last_error, '')), lower($4)) > 0)
  AND ($5::text IS NULL OR d.workflow_id = $5)
  AND (NOT $9::boolean OR (d.requeued_at IS NULL AND (d.workflow_id IS NULL OR EXISTS (
      SELECT 1 FROM durable_workflow_instances w
      WHERE w.id = d.workflow_id AND w.status IN ('pending', 'running')))))
  AND ($6::timestamptz IS NULL OR d.dead_at > $6 OR (d.dead_at = $6 AND d.id > $7::uuid))
ORDER BY d.dead_at, d.id
LIMIT $8;

-- name: bulk_count_dead_letters
-- What bulk_select_dead_letters would take, all batches together.
SELECT count(*) FROM durable_dead_letter_queue d
WHERE ($1::text IS NULL OR d.activity_type = $1)
  AND ($2::timestamptz IS NULL OR d.dead_at >= $2)
  AND ($3::timestamptz IS NULL OR d.dead_at < $3)
  AND ($4::text IS NULL OR strpos(lower(COALESCE(d.last_error, '')), lower($4)) > 0)
  AND ($5::text IS NULL OR d.workflow_id = $5)
  AND (NOT $6::boolean OR (d.requeued_at IS NULL AND (d.workflow_id IS NULL OR EXISTS (
      SELECT 1 FROM durable_workflow_instances w
      WHERE w.id = d.workflow_id AND w.status IN ('pending', 'running')))));

-- name: bulk_delete_dead_letters
-- The entries of $1, and the dead task of each standalone one with it (delete_dead_letter's
-- rule, a batch at once).
WITH entry AS (
    DELETE FROM durable_dead_letter_queue WHERE id = ANY($1::uuid[])
    RETURNING original_task_id, workflow_id
), task AS (
    DELETE FROM durable_task_queue t USING entry
    WHERE t.id = entry.original_task_id AND t.workflow_id IS NULL AND t.status = 'dead'
)
SELECT count(*) FROM entry;

-- name: bulk_requeue_dead_letter
-- requeue_dead_letter for an entry not requeued yet (no row when someone did meanwhile); the
-- durable_dlq_requeue trigger enqueues the task, or refuses an ended workflow's step.
UPDATE durable_dead_letter_queue SET requeued_at = $2 WHERE id = $1 AND requeued_at IS NULL
RETURNING requeued_task_id;
