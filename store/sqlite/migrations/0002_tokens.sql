-- The token key ring and revocations (package tokens).
CREATE TABLE signing_keys (
	id         TEXT PRIMARY KEY,
	seed       BLOB NOT NULL CHECK (length(seed) = 32),
	created_at INTEGER NOT NULL, -- unix microseconds
	retired_at INTEGER           -- NULL while the key verifies
) STRICT;

CREATE TABLE revoked_tokens (
	jti        TEXT PRIMARY KEY,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE revoked_sessions (
	session_id TEXT PRIMARY KEY,
	revoked_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
