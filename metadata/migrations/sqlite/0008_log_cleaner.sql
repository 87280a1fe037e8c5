-- The log cleaner of compacted topics. Keep in step with
-- ../postgres/0008_log_cleaner.sql.

-- Offsets below it have been cleaned: the clean section of the partition's
-- log (Kafka's cleaner checkpoint). The dirty section starts here.
ALTER TABLE partitions ADD COLUMN cleaned_offset BIGINT NOT NULL DEFAULT 0;

-- Bytes of the partition's runs the last cleaning left below cleaned_offset:
-- the dirty bytes are the rest. (Entries cannot tell: the small-object
-- compactor merges clean and dirty entries into one, and the cleaner's gaps
-- make offsets a poor measure of bytes.)
ALTER TABLE partitions ADD COLUMN cleaned_bytes BIGINT NOT NULL DEFAULT 0;
