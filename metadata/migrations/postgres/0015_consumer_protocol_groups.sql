-- Consumer groups of the new protocol (KIP-848, group.protocol=consumer): the
-- coordinator's whole state of such a group (group and assignment epochs, each
-- member's subscription, epoch and partitions, the target assignment), encoded
-- by the broker as one JSON document that the catalog does not interpret.
-- NULL for a classic group, whose members stay in consumer_group_members.
-- Keep in step with ../sqlite/0015_consumer_protocol_groups.sql.

ALTER TABLE consumer_groups ADD COLUMN consumer_state TEXT;
