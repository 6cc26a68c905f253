-- agentbroker's schema on PostgreSQL: the same tables as the SQLite store
-- (store/sqlite/migrations), as of its version 8. Times are unix
-- microseconds (bigint), as there, so that both stores keep and return
-- exactly the same instants. Text that may be absent is '' rather than NULL.
-- Event data and session configs are text, not jsonb: kept byte for byte.

CREATE TABLE broker_meta (
	key   text PRIMARY KEY,
	value text NOT NULL
);

CREATE TABLE signing_keys (
	id         text PRIMARY KEY,
	seed       bytea NOT NULL CHECK (length(seed) = 32),
	created_at bigint NOT NULL,
	retired_at bigint -- NULL while the key verifies
);

CREATE TABLE revoked_tokens (
	jti        text PRIMARY KEY,
	expires_at bigint NOT NULL,
	revoked_at bigint NOT NULL
);

CREATE TABLE revoked_sessions (
	session_id text PRIMARY KEY,
	revoked_at bigint NOT NULL
);

-- Full-text search: English stemming (Snowball, without stop words, as
-- FTS5's porter tokenizer keeps every word), accents folded (unaccent),
-- case folded. A hyphenated word is indexed as its parts only, so that
-- "foo-bar" and "foo bar" are the same phrase, as in FTS5.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE TEXT SEARCH DICTIONARY agentbroker_stem (TEMPLATE = snowball, Language = english);
CREATE TEXT SEARCH CONFIGURATION agentbroker (COPY = english);
ALTER TEXT SEARCH CONFIGURATION agentbroker
	ALTER MAPPING FOR asciiword, word, numword, hword_asciipart, hword_part, hword_numpart
	WITH unaccent, agentbroker_stem;
ALTER TEXT SEARCH CONFIGURATION agentbroker DROP MAPPING FOR asciihword, hword, numhword;

CREATE TABLE projects (
	id             text PRIMARY KEY,
	name           text NOT NULL CHECK (name <> ''),
	description    text NOT NULL DEFAULT '',
	repo_path      text NOT NULL DEFAULT '',
	repo_url       text NOT NULL DEFAULT '',
	default_branch text NOT NULL DEFAULT '',
	instructions   text NOT NULL DEFAULT '',
	created_at     bigint NOT NULL,
	updated_at     bigint NOT NULL
);

CREATE INDEX projects_by_name ON projects (lower(name), id);

-- Searched tables weigh their fields as the SQLite store's bm25 calls do:
-- A 1.0, B 0.5, C 0.25 (see search.go).
CREATE TABLE tasks (
	pk              bigserial PRIMARY KEY,
	id              text NOT NULL UNIQUE,
	project_id      text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	title           text NOT NULL CHECK (title <> ''),
	description     text NOT NULL DEFAULT '',
	status          text NOT NULL CHECK (status IN ('draft', 'queued', 'in_progress', 'completed', 'failed', 'cancelled')),
	notes           text NOT NULL DEFAULT '',
	output_summary  text NOT NULL DEFAULT '',
	session_id      text NOT NULL DEFAULT '',
	budget_pico_usd bigint NOT NULL DEFAULT 0 CHECK (budget_pico_usd >= 0),
	created_at      bigint NOT NULL,
	updated_at      bigint NOT NULL,
	tsv tsvector GENERATED ALWAYS AS (
		setweight(to_tsvector('agentbroker', title), 'A') ||
		setweight(to_tsvector('agentbroker', description), 'B') ||
		setweight(to_tsvector('agentbroker', notes), 'C') ||
		setweight(to_tsvector('agentbroker', output_summary), 'C')) STORED
);

CREATE INDEX tasks_by_project ON tasks (project_id, created_at);
CREATE INDEX tasks_by_status ON tasks (project_id, status, created_at);
CREATE INDEX tasks_by_session ON tasks (project_id, session_id, created_at);
CREATE INDEX tasks_fts ON tasks USING gin (tsv);

CREATE TABLE knowledge (
	pk         bigserial PRIMARY KEY,
	id         text NOT NULL UNIQUE,
	project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	title      text NOT NULL CHECK (title <> ''),
	body       text NOT NULL CHECK (body <> ''),
	tags       text NOT NULL DEFAULT '[]', -- a JSON array, as written
	session_id text NOT NULL DEFAULT '',
	created_at bigint NOT NULL,
	updated_at bigint NOT NULL,
	tsv tsvector GENERATED ALWAYS AS (
		setweight(to_tsvector('agentbroker', title), 'A') ||
		setweight(to_tsvector('agentbroker', tags), 'B') ||
		setweight(to_tsvector('agentbroker', body), 'C')) STORED
);

CREATE INDEX knowledge_by_project ON knowledge (project_id, created_at);
CREATE INDEX knowledge_fts ON knowledge USING gin (tsv);

CREATE TABLE sessions (
	pk         bigserial NOT NULL UNIQUE, -- insertion order, for ties
	id         text PRIMARY KEY,
	project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	agent      text NOT NULL DEFAULT '',
	model      text NOT NULL DEFAULT '',
	state      text NOT NULL DEFAULT '',
	title      text NOT NULL DEFAULT '',
	config     text NOT NULL DEFAULT '',
	created_at bigint NOT NULL,
	updated_at bigint NOT NULL,
	UNIQUE (id, project_id)
);

CREATE INDEX sessions_by_project ON sessions (project_id, created_at);
CREATE INDEX sessions_by_state ON sessions (state, created_at, id);

CREATE TABLE messages (
	pk         bigserial PRIMARY KEY,
	session_id text NOT NULL,
	project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	seq        bigint NOT NULL CHECK (seq >= 1),
	role       text NOT NULL CHECK (role IN ('user', 'assistant', 'tool', 'thinking', 'plan')),
	content    text NOT NULL CHECK (content <> ''),
	created_at bigint NOT NULL,
	tsv tsvector GENERATED ALWAYS AS (to_tsvector('agentbroker', content)) STORED,
	UNIQUE (session_id, seq),
	FOREIGN KEY (session_id, project_id) REFERENCES sessions (id, project_id) ON DELETE CASCADE
);

CREATE INDEX messages_by_project ON messages (project_id);
CREATE INDEX messages_fts ON messages USING gin (tsv);

CREATE TABLE events (
	session_id text   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	seq        bigint NOT NULL CHECK (seq > 0),
	type       text   NOT NULL,
	data       text   NOT NULL,
	created_at bigint NOT NULL,
	PRIMARY KEY (session_id, seq)
);

CREATE TABLE usage_records (
	pk                 bigserial PRIMARY KEY,
	session_id         text   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	project_id         text   NOT NULL,
	task_id            text   NOT NULL DEFAULT '',
	model              text   NOT NULL DEFAULT '',
	provider           text   NOT NULL DEFAULT '',
	input_tokens       bigint NOT NULL CHECK (input_tokens >= 0),
	output_tokens      bigint NOT NULL CHECK (output_tokens >= 0),
	cache_read_tokens  bigint NOT NULL CHECK (cache_read_tokens >= 0),
	cache_write_tokens bigint NOT NULL CHECK (cache_write_tokens >= 0),
	cost_pico_usd      bigint NOT NULL CHECK (cost_pico_usd >= 0),
	outcome            text   NOT NULL DEFAULT '',
	at                 bigint NOT NULL
);

CREATE INDEX usage_by_project ON usage_records (project_id, at);
CREATE INDEX usage_by_session ON usage_records (session_id, at);
CREATE INDEX usage_by_task ON usage_records (task_id, at) WHERE task_id <> '';

CREATE TABLE task_runs (
	pk         bigserial NOT NULL UNIQUE,
	session_id text   PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
	project_id text   NOT NULL,
	task_id    text   NOT NULL,
	agent      text   NOT NULL DEFAULT '',
	model      text   NOT NULL DEFAULT '',
	state      text   NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
	reason     text   NOT NULL DEFAULT '',
	reply      text   NOT NULL DEFAULT '',
	notes      text   NOT NULL DEFAULT '',
	started_at bigint NOT NULL,
	ended_at   bigint NOT NULL DEFAULT 0
);

CREATE INDEX task_runs_by_task ON task_runs (project_id, task_id, started_at);
CREATE INDEX task_runs_running ON task_runs (started_at) WHERE state = 'running';
