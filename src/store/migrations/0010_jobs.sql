-- Scheduled jobs (spec §6): every run of a job, scheduled or by hand, and
-- the schedule the daemon follows for each job.

-- One row per run. A scheduled run is keyed by its occurrence: the Paris
-- wall-clock minute its cron expression names ('2026-10-25T02:30'), unique
-- per job, so that an occurrence runs once across restarts and the
-- daylight-saving changes (the two instants reading 02:30 on the fall-back
-- Sunday are one occurrence). A run by hand (`ppas-gateway run JOB`) is
-- 'manual:<RFC 3339 instant>' and never unique. A row whose finished_at is
-- NULL was started and not finished: in hand, or interrupted by a stop of
-- the process (retried once at the next start of the daemon).
CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY,
    job         TEXT NOT NULL,
    occurrence  TEXT NOT NULL,
    cause       TEXT NOT NULL CHECK (cause IN ('schedule', 'catch-up', 'manual')),
    due_at      TEXT,                      -- RFC 3339 UTC: when the occurrence was due (scheduled runs)
    started_at  TEXT NOT NULL,             -- RFC 3339 UTC, the latest attempt
    finished_at TEXT,
    outcome     TEXT CHECK (outcome IN ('ok', 'error')),
    summary     TEXT,                      -- what the job did, or its error (one line)
    attempts    INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX job_runs_occurrence ON job_runs(job, occurrence) WHERE cause != 'manual';
CREATE INDEX job_runs_job ON job_runs(job);
CREATE INDEX job_runs_unfinished ON job_runs(finished_at) WHERE finished_at IS NULL;

-- The schedule the daemon follows for each scheduled job, and since when
-- (RFC 3339 UTC): an occurrence is owed only if it fell after `since`, so
-- a first start, or a schedule just changed, owes nothing from before.
CREATE TABLE job_schedules (
    job      TEXT PRIMARY KEY,
    schedule TEXT NOT NULL,
    since    TEXT NOT NULL
);
