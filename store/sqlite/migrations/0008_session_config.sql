-- What a fleet of brokers (and one broker) needs of session records: a
-- session found by its ID alone (the primary key already serves), its
-- configuration in a column rather than scanned from its events, and the
-- live sessions listed by state across projects (recovery).
ALTER TABLE sessions ADD COLUMN config TEXT NOT NULL DEFAULT '' CHECK (config = '' OR json_valid(config));

CREATE INDEX sessions_by_state ON sessions (state, created_at, id);
