-- 0008: throughput (GetThroughput, the console's queue chart) counts the tasks completed per
-- type in the last hour. 0006's completed_at index holds standalone activities only (a
-- workflow's steps and decision tasks are not in it), so without this index the count reads
-- the whole queue. Completed tasks, by completion time, with the type for an index-only scan.
-- A completion already changes indexed columns (status), so no update that was HOT stops being.
CREATE INDEX durable_task_queue_completed_idx
    ON durable_task_queue (completed_at) INCLUDE (kind, activity_type)
    WHERE status = 'completed';
