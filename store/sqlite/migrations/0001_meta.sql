-- The broker's own facts about this database.
CREATE TABLE broker_meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;
