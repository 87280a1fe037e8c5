-- Client quotas, one row per entity and key. Keep in step with
-- ../sqlite/0010_client_quotas.sql.
--
-- An entity part's kind: 0 absent, 1 the default, 2 the name in *_name
-- ('' unless named), so that a default and a name never collide. The value
-- is the decimal text of a double, which both databases keep exactly.
CREATE TABLE client_quotas (
    user_kind BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    client_kind BIGINT NOT NULL,
    client_name TEXT NOT NULL,
    quota_key TEXT NOT NULL,
    quota_value TEXT NOT NULL,
    PRIMARY KEY (user_kind, user_name, client_kind, client_name, quota_key)
);
