-- Projects and what agents keep about them: tasks, knowledge, and session
-- transcripts, each searchable by full text within one project.
--
-- Tables that are searched have an explicit INTEGER PRIMARY KEY (pk): it is
-- the rowid of their FTS5 index, and an explicit one survives VACUUM (an
-- implicit rowid may be renumbered, which would detach the index). The
-- FTS5 tables are external-content indexes of those tables, kept in sync by
-- the triggers below; they hold no project ID, so every search joins back
-- to its table and filters by project_id there, in the same statement as
-- the ORDER BY and LIMIT.
--
-- Times are unix microseconds. Text that may be absent is '' rather than
-- NULL, so that filters and scans need no coalesce.

CREATE TABLE projects (
	id             TEXT PRIMARY KEY,
	name           TEXT NOT NULL CHECK (name <> ''),
	description    TEXT NOT NULL DEFAULT '',
	repo_path      TEXT NOT NULL DEFAULT '',
	repo_url       TEXT NOT NULL DEFAULT '',
	default_branch TEXT NOT NULL DEFAULT '',
	instructions   TEXT NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX projects_by_name ON projects (name COLLATE NOCASE, id);

CREATE TABLE tasks (
	pk             INTEGER PRIMARY KEY,
	id             TEXT NOT NULL UNIQUE,
	project_id     TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	title          TEXT NOT NULL CHECK (title <> ''),
	description    TEXT NOT NULL DEFAULT '',
	status         TEXT NOT NULL CHECK (status IN ('draft', 'queued', 'in_progress', 'completed', 'failed', 'cancelled')),
	notes          TEXT NOT NULL DEFAULT '',
	output_summary TEXT NOT NULL DEFAULT '',
	session_id     TEXT NOT NULL DEFAULT '', -- not a foreign key: the session may be recorded later
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL
) STRICT;

-- ListTasks: all of a project's tasks, or those of one status, or of one
-- session, newest first (pk breaks ties and is part of every index).
CREATE INDEX tasks_by_project ON tasks (project_id, created_at);
CREATE INDEX tasks_by_status ON tasks (project_id, status, created_at);
CREATE INDEX tasks_by_session ON tasks (project_id, session_id, created_at);

CREATE TABLE knowledge (
	pk         INTEGER PRIMARY KEY,
	id         TEXT NOT NULL UNIQUE,
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	title      TEXT NOT NULL CHECK (title <> ''),
	body       TEXT NOT NULL CHECK (body <> ''),
	tags       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags) AND json_type(tags) = 'array'),
	session_id TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX knowledge_by_project ON knowledge (project_id, created_at);

CREATE TABLE sessions (
	id         TEXT PRIMARY KEY,
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	agent      TEXT NOT NULL DEFAULT '',
	model      TEXT NOT NULL DEFAULT '',
	state      TEXT NOT NULL DEFAULT '',
	title      TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_by_project ON sessions (project_id, created_at);
-- The target of messages' (session_id, project_id) foreign key: a message
-- can only belong to a session of its own project.
CREATE UNIQUE INDEX sessions_id_project ON sessions (id, project_id);

CREATE TABLE messages (
	pk         INTEGER PRIMARY KEY,
	session_id TEXT NOT NULL,
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL CHECK (seq >= 1),
	role       TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool', 'thinking', 'plan')),
	content    TEXT NOT NULL CHECK (content <> ''),
	created_at INTEGER NOT NULL,
	UNIQUE (session_id, seq), -- also the index for SessionMessages and max(seq)
	FOREIGN KEY (session_id, project_id) REFERENCES sessions (id, project_id) ON DELETE CASCADE
) STRICT;

CREATE INDEX messages_by_project ON messages (project_id);

-- Full-text indexes. The tokenizer folds case and diacritics and stems
-- English words (porter): "Migrations" finds "migration".

CREATE VIRTUAL TABLE tasks_fts USING fts5 (
	title, description, notes, output_summary,
	content = 'tasks', content_rowid = 'pk',
	tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER tasks_fts_insert AFTER INSERT ON tasks BEGIN
	INSERT INTO tasks_fts (rowid, title, description, notes, output_summary)
	VALUES (new.pk, new.title, new.description, new.notes, new.output_summary);
END;

CREATE TRIGGER tasks_fts_delete AFTER DELETE ON tasks BEGIN
	INSERT INTO tasks_fts (tasks_fts, rowid, title, description, notes, output_summary)
	VALUES ('delete', old.pk, old.title, old.description, old.notes, old.output_summary);
END;

CREATE TRIGGER tasks_fts_update AFTER UPDATE OF pk, title, description, notes, output_summary ON tasks BEGIN
	INSERT INTO tasks_fts (tasks_fts, rowid, title, description, notes, output_summary)
	VALUES ('delete', old.pk, old.title, old.description, old.notes, old.output_summary);
	INSERT INTO tasks_fts (rowid, title, description, notes, output_summary)
	VALUES (new.pk, new.title, new.description, new.notes, new.output_summary);
END;

-- Tags are indexed as their JSON text: the tokenizer splits on the
-- brackets, quotes and commas.
CREATE VIRTUAL TABLE knowledge_fts USING fts5 (
	title, body, tags,
	content = 'knowledge', content_rowid = 'pk',
	tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER knowledge_fts_insert AFTER INSERT ON knowledge BEGIN
	INSERT INTO knowledge_fts (rowid, title, body, tags)
	VALUES (new.pk, new.title, new.body, new.tags);
END;

CREATE TRIGGER knowledge_fts_delete AFTER DELETE ON knowledge BEGIN
	INSERT INTO knowledge_fts (knowledge_fts, rowid, title, body, tags)
	VALUES ('delete', old.pk, old.title, old.body, old.tags);
END;

CREATE TRIGGER knowledge_fts_update AFTER UPDATE OF pk, title, body, tags ON knowledge BEGIN
	INSERT INTO knowledge_fts (knowledge_fts, rowid, title, body, tags)
	VALUES ('delete', old.pk, old.title, old.body, old.tags);
	INSERT INTO knowledge_fts (rowid, title, body, tags)
	VALUES (new.pk, new.title, new.body, new.tags);
END;

CREATE VIRTUAL TABLE messages_fts USING fts5 (
	content,
	content = 'messages', content_rowid = 'pk',
	tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
	INSERT INTO messages_fts (rowid, content) VALUES (new.pk, new.content);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.pk, old.content);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF pk, content ON messages BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.pk, old.content);
	INSERT INTO messages_fts (rowid, content) VALUES (new.pk, new.content);
END;
