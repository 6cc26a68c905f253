-- Session ownership in a fleet: each live session is owned by one node
-- (broker process) through a lease its owner renews. Expiry is on the
-- database's clock (unix microseconds), so the nodes' clocks do not matter.
CREATE TABLE session_leases (
	session_id  text   PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
	node        text   NOT NULL CHECK (node <> ''),
	acquired_at bigint NOT NULL,
	expires_at  bigint NOT NULL
);

CREATE INDEX session_leases_by_node ON session_leases (node);
