-- One row per task run (agentbroker task run): the session the broker
-- started for a task, and how it ended. A run ends once.
CREATE TABLE task_runs (
	session_id TEXT    PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
	project_id TEXT    NOT NULL,
	task_id    TEXT    NOT NULL, -- not a foreign key, like usage_records.task_id
	agent      TEXT    NOT NULL DEFAULT '',
	model      TEXT    NOT NULL DEFAULT '',
	state      TEXT    NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
	reason     TEXT    NOT NULL DEFAULT '',
	reply      TEXT    NOT NULL DEFAULT '',
	notes      TEXT    NOT NULL DEFAULT '',
	started_at INTEGER NOT NULL,
	ended_at   INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX task_runs_by_task ON task_runs (project_id, task_id, started_at);
CREATE INDEX task_runs_running ON task_runs (started_at) WHERE state = 'running';
