-- Session event logs (package sessions): every event of a session, numbered
-- by the session broker, stored before it is broadcast.
CREATE TABLE events (
	session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL CHECK (seq > 0),
	type       TEXT    NOT NULL,
	data       TEXT    NOT NULL CHECK (json_valid(data)),
	created_at INTEGER NOT NULL,
	PRIMARY KEY (session_id, seq)
) STRICT, WITHOUT ROWID;
