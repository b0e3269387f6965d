-- 0009: reserved for the concurrency-keys and rate-limits branch (issue 15), which owns
-- number 0009; this no-op only keeps the numbering without gaps on the bulk branch until both
-- are merged. Drop this file when that branch's 0009 lands.
SELECT 1;
