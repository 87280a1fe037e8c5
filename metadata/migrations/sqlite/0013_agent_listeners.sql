-- Every listener an agent advertises, Kafka's advertised.listeners form:
-- LISTENER://HOST:PORT joined by commas, the first listener's first (host and
-- port keep the first listener's address). Keep in step with
-- ../postgres/0013_agent_listeners.sql. An agent of an older version inserts
-- rows without it: '' stands for its one listener at host:port, which clients
-- of every listener are told, as before agents had several.
ALTER TABLE agents ADD COLUMN listeners TEXT NOT NULL DEFAULT '';
