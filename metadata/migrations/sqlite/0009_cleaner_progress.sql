-- The log cleaner's progress beyond the clean section. Keep in step with
-- ../postgres/0009_cleaner_progress.sql.

-- The end of the range the last cleaning looked at: offsets from
-- cleaned_offset up to it were seen but not deduplicated (the batch holding
-- the partition's last record is left as it is). A partition is looked at
-- again once its log reaches beyond it, so a quiet partition is not cleaned
-- over and over for a batch that cannot be.
ALTER TABLE partitions ADD COLUMN cleaner_limit_offset BIGINT NOT NULL DEFAULT 0;

-- When the earliest tombstone the last cleaning kept outlives
-- delete.retention.ms, in ms since the epoch; 9223372036854775807 when it
-- kept none. A partition is cleaned again then even if nothing new came, as
-- Kafka cleans a log whose delete horizon has passed.
ALTER TABLE partitions ADD COLUMN tombstones_expire_at_ms BIGINT NOT NULL DEFAULT 9223372036854775807;
