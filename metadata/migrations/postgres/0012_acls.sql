-- Access control entries, Kafka's AclBinding: one row each, the whole row
-- the key (adding an ACL twice keeps one). Keep in step with
-- ../sqlite/0012_acls.sql.
--
-- resource_type, pattern_type, operation and permission are Kafka's codes
-- (ResourceType, PatternType, AclOperation, AclPermissionType).
CREATE TABLE acls (
    resource_type BIGINT NOT NULL,
    resource_name TEXT NOT NULL,
    pattern_type BIGINT NOT NULL,
    principal TEXT NOT NULL,
    host TEXT NOT NULL,
    operation BIGINT NOT NULL,
    permission BIGINT NOT NULL,
    PRIMARY KEY (resource_type, resource_name, pattern_type, principal, host, operation, permission)
);
