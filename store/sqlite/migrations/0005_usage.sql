-- One row per model call through the inference proxy (package sessions
-- writes it with the call's "usage" event): usage and cost totals per
-- session, task, project and day are queries over it.
CREATE TABLE usage_records (
	pk                 INTEGER PRIMARY KEY,
	session_id         TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	project_id         TEXT    NOT NULL,
	task_id            TEXT    NOT NULL DEFAULT '', -- not a foreign key: tasks may go, their cost stays
	model              TEXT    NOT NULL DEFAULT '',
	provider           TEXT    NOT NULL DEFAULT '',
	input_tokens       INTEGER NOT NULL CHECK (input_tokens >= 0),
	output_tokens      INTEGER NOT NULL CHECK (output_tokens >= 0),
	cache_read_tokens  INTEGER NOT NULL CHECK (cache_read_tokens >= 0),
	cache_write_tokens INTEGER NOT NULL CHECK (cache_write_tokens >= 0),
	cost_pico_usd      INTEGER NOT NULL CHECK (cost_pico_usd >= 0),
	outcome            TEXT    NOT NULL DEFAULT '',
	at                 INTEGER NOT NULL
) STRICT;

CREATE INDEX usage_by_project ON usage_records (project_id, at);
CREATE INDEX usage_by_session ON usage_records (session_id, at);
CREATE INDEX usage_by_task ON usage_records (task_id, at) WHERE task_id <> '';
