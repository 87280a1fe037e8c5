-- The log cleaner of compacted topics. Keep in step with
-- ../sqlite/0008_log_cleaner.sql.

-- Offsets below it have been cleaned: the clean section of the partition's
-- log (Kafka's cleaner checkpoint). The dirty section starts here.
ALTER TABLE partitions ADD COLUMN cleaned_offset BIGINT NOT NULL DEFAULT 0;
