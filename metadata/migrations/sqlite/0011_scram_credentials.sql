-- SCRAM credentials (RFC 5802) of the users clients authenticate as, one row
-- per user and mechanism. Keep in step with ../postgres/0011_scram_credentials.sql.
--
-- mechanism is Kafka's ScramMechanism type: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
-- salt, stored_key and server_key are base64 text, so that both databases
-- keep them with the same column type; the password itself is never stored.
CREATE TABLE scram_credentials (
    user_name TEXT NOT NULL,
    mechanism BIGINT NOT NULL,
    salt TEXT NOT NULL,
    iterations BIGINT NOT NULL,
    stored_key TEXT NOT NULL,
    server_key TEXT NOT NULL,
    PRIMARY KEY (user_name, mechanism)
);
