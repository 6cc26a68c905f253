-- The brokers of a fleet and the base URL the others reach each one at
-- (commands for a session are forwarded to its owner).
CREATE TABLE nodes (
	id         text   PRIMARY KEY CHECK (id <> ''),
	url        text   NOT NULL,
	updated_at bigint NOT NULL
);
