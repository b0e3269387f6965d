-- The step-once index guards the steps of a workflow: one live task per (workflow, activity or
-- timer id). A standalone activity (workflow_id NULL) can never conflict in it, yet every
-- version of its row (enqueued, claimed, completed) was written into it. Leaving those rows
-- out saves one index entry per state change of every standalone task, on the hottest path.
-- The index is rebuilt in this migration's transaction, which blocks writes to the task queue
-- while it builds: with a large queue, upgrade at a quiet moment.
DROP INDEX durable_task_queue_step_once_idx;
CREATE UNIQUE INDEX durable_task_queue_step_once_idx
    ON durable_task_queue (workflow_id, kind, activity_id)
    WHERE workflow_id IS NOT NULL AND kind IN ('activity', 'timer')
      AND status IN ('pending', 'claimed', 'completed');
