"""Cron-style ingest jobs, run by the agent with APScheduler (3.x).

A job is `{id, cron, kind, dataset, mode}` plus its source:
- kind "file": `path`, a path or glob (relative ones resolve inside the data
  directory); every matched file is ingested like an inbox drop (same sidecar rule,
  same dedupe: unchanged bytes are a noop) but never moved;
- kind "db": `source`, the arguments of `lakehouse.ingest.db_sync.sync_db` (`dsn`,
  `table` or `query`, optional `watermark`, `key`, `batch_rows`, `password_env`); see
  `run_db_job`. The stored DSN never holds a password: a job gets it at run time from
  the agent's environment variable `password_env` (named `LAKEHOUSE_*`, `PGPASSWORD`
  or `MYSQL_PWD`), and a DSN with a password is refused. Jobs stored before that rule
  still run, and their DSN is masked whenever a job is shown; sync errors arrive
  already scrubbed. `mode` unset means the sync's default (upsert with a `key`, append
  with a watermark, else replace).

Adding a job whose id is taken raises `ScheduleExists` (409 at the gateway).

`cron` is a crontab line: 5 fields (minute hour day month day-of-week, with the usual
0/7 = Sunday), or 6 fields with seconds first. Times are the machine's local time.

Storage (only the process owning the data directory writes them, DESIGN decision 6):
`<data_dir>/_schedules/jobs.json` (the definitions, replaced atomically) and
`<data_dir>/_schedules/runs.jsonl` (one line per run: job id, trigger, start, end,
status ok | noop | failed | missed, rows, duration, error).

Missed runs (the agent was down, or busy past the grace time) - policy "coalesce":
at start, a job whose schedule fired at least once since its last run (or since it
was created) runs ONCE, however many runs were missed, provided the most recent
missed fire time is within `misfire_grace_s` (`[daemon] misfire_grace_seconds`;
0 = no limit). Missed runs older than that are not run; a `missed` record says so.
While running, APScheduler applies the same rule (coalesce, same grace time).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from glob import glob
from pathlib import Path
from typing import Any, Literal

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from lakehouse.daemon.inbox import Guard, ingest_dropped_file, is_candidate_name, utc_now
from lakehouse.errors import InvalidInput, LakehouseError, NotFound, error_body
from lakehouse.lakehouse import Lakehouse, validate_dataset_name

log = logging.getLogger("lakehouse.schedules")

SCHEDULES_DIR = "_schedules"
JOBS_FILE = "jobs.json"
RUNS_FILE = "runs.jsonl"
KINDS = ("file", "db")
MODES = ("append", "replace")
#: a database job may also upsert (with `source.key`)
DB_MODES = (*MODES, "upsert")
#: what a database job's `source` may hold (the arguments of `sync_db` it sets)
DB_SOURCE_KEYS = {"dsn", "table", "query", "watermark", "key", "batch_rows", "password_env"}
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
SCHEDULE_ACTOR = "scheduler"
#: where kind "db" finds its sync function, imported only when a DB job runs
DB_MODULE, DB_SYNC_FUNCTION = "lakehouse.ingest.db_sync", "sync_db"
Trigger = Literal["cron", "catch_up", "manual"]


# ---------------------------------------------------------------------- cron
def parse_cron(expr: str) -> CronTrigger:
    """A crontab line (5 fields, or 6 with seconds first) as an APScheduler trigger."""
    parts = expr.split()
    if len(parts) not in (5, 6):
        raise InvalidInput(f"cron {expr!r}: give 5 fields (minute hour day month weekday) or 6 (seconds first)")
    second = parts.pop(0) if len(parts) == 6 else "0"
    minute, hour, day, month, weekday = parts
    try:
        return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=cron_weekdays(weekday))
    except ValueError as exc:
        raise InvalidInput(f"cron {expr!r}: {exc}") from None


def cron_weekdays(field_text: str) -> str:
    """Crontab weekday numbers (0/7 = Sunday) as names: APScheduler counts from Monday.
    Numbers after '/' are steps, not days."""
    return re.sub(r"(?<![/\d])\d+", lambda m: CRON_DAYS[int(m.group()) % 7], field_text)


def missed_run(trigger: CronTrigger, since: datetime, now: datetime, grace_s: float) -> Literal["none", "run", "skip"]:
    """The coalesce policy (module docstring): did `trigger` fire in (since, now], and is
    its latest fire time in that span recent enough to catch up?"""
    first_missed = trigger.get_next_fire_time(None, since + timedelta(microseconds=1))
    if first_missed is None or first_missed > now:
        return "none"
    if not grace_s:
        return "run"
    # The first fire time at or after (now - grace) exists and is past <=> one was missed within grace.
    recent = trigger.get_next_fire_time(None, now - timedelta(seconds=grace_s))
    return "run" if recent is not None and recent <= now else "skip"


class ScheduleExists(InvalidInput):
    """A job with this id is already stored (the gateway answers 409)."""


# ---------------------------------------------------------------------- jobs
@dataclass
class ScheduleJob:
    id: str
    cron: str
    kind: str
    dataset: str | None = None
    mode: str | None = None
    path: str | None = None
    source: dict[str, Any] | None = None
    created_at: str = field(default_factory=lambda: utc_now().isoformat())
    #: start of the latest run; the reference for the missed-run policy
    last_run_at: str | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ScheduleJob:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InvalidInput(f"unknown schedule field(s) {sorted(unknown)}; known: {sorted(known)}")
        job = cls(**values)
        job.validate()
        return job

    def validate(self) -> None:
        if not isinstance(self.id, str) or not JOB_ID.match(self.id):
            raise InvalidInput(f"schedule id {self.id!r}: use 1-64 letters, digits, '_', '.', '-'")
        parse_cron(self.cron)
        if self.kind not in KINDS:
            raise InvalidInput(f"schedule kind must be one of {KINDS}, not {self.kind!r}")
        modes = DB_MODES if self.kind == "db" else MODES
        if self.mode is not None and self.mode not in modes:
            raise InvalidInput(f"a {self.kind!r} schedule's mode must be one of {modes}, not {self.mode!r}")
        if self.dataset is not None:
            validate_dataset_name(self.dataset)
        if self.kind == "file" and not self.path:
            raise InvalidInput("a 'file' schedule needs `path` (a file path or glob)")
        if self.kind == "db":
            self.validate_db_source()

    def validate_db_source(self) -> None:
        from lakehouse.ingest.db import check_password_env_name, dsn_secrets, redact_dsn  # the DB ingest's own rules

        source = self.source
        if not (isinstance(source, dict) and isinstance(source.get("dsn"), str) and source["dsn"]
                and (source.get("table") or source.get("query"))):
            raise InvalidInput("a 'db' schedule needs `source` with `dsn` and `table` or `query`")
        unknown = set(source) - DB_SOURCE_KEYS
        if unknown:
            raise InvalidInput(f"unknown field(s) {sorted(unknown)} in a 'db' schedule's source; known: {sorted(DB_SOURCE_KEYS)}")
        if dsn_secrets(source["dsn"]):
            raise InvalidInput(
                f"the DSN {redact_dsn(source['dsn'])!r} holds a password, which would be stored in the schedule; "
                "leave it out and set `password_env` to an environment variable of the agent that holds it "
                "(named LAKEHOUSE_*, PGPASSWORD or MYSQL_PWD)"
            )
        if source.get("password_env") is not None:
            check_password_env_name(source["password_env"])
        if source.get("key") is not None and not source.get("watermark"):
            raise InvalidInput("a 'db' schedule with a `key` (upsert) needs a `watermark` column too")
        if self.mode == "upsert" and not source.get("key"):
            raise InvalidInput("mode 'upsert' needs `key` in the source")
        if source.get("key") is not None and self.mode not in (None, "upsert"):
            raise InvalidInput(f"a source `key` means mode 'upsert', not {self.mode!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def public(self) -> dict[str, Any]:
        """The job as shown to people: secrets in the source masked."""
        shown = self.to_dict()
        if self.source and isinstance(self.source.get("dsn"), str):
            from lakehouse.ingest.db import redact_dsn  # the DB ingest's own redaction rule

            shown["source"] = {**self.source, "dsn": redact_dsn(self.source["dsn"])}
        return shown


# ---------------------------------------------------------------------- storage
class ScheduleStore:
    """`jobs.json` and `runs.jsonl` of one data directory; safe to share between threads."""

    def __init__(self, data_path: Path):
        self.dir = Path(data_path) / SCHEDULES_DIR
        self.jobs_file = self.dir / JOBS_FILE
        self.runs_file = self.dir / RUNS_FILE
        self._lock = threading.RLock()

    def jobs(self) -> list[ScheduleJob]:
        with self._lock:
            if not self.jobs_file.is_file():
                return []
            return [ScheduleJob(**values) for values in json.loads(self.jobs_file.read_text(encoding="utf-8"))]

    def get(self, job_id: str) -> ScheduleJob:
        for job in self.jobs():
            if job.id == job_id:
                return job
        raise NotFound(f"no schedule {job_id!r}")

    def add(self, job: ScheduleJob) -> ScheduleJob:
        job.validate()
        with self._lock:
            jobs = self.jobs()
            existing = next((j for j in jobs if j.id == job.id), None)
            if existing is not None:
                raise ScheduleExists(
                    f"schedule {job.id!r} already exists (cron {existing.cron!r}, kind {existing.kind!r}); "
                    f"remove it first (`lakehouse schedule remove {job.id}`) or choose another id"
                )
            self._save([*jobs, job])
        return job

    def remove(self, job_id: str) -> ScheduleJob:
        with self._lock:
            jobs = self.jobs()
            job = self.get(job_id)
            self._save([j for j in jobs if j.id != job_id])
        return job

    def mark_ran(self, job_id: str, at: datetime) -> None:
        with self._lock:
            jobs = self.jobs()
            for job in jobs:
                if job.id == job_id:
                    job.last_run_at = at.isoformat()
            self._save(jobs)

    def record_run(self, run: dict[str, Any]) -> None:
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.runs_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(run, default=str) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def runs(self, job_id: str | None = None, limit: int | None = 100) -> list[dict[str, Any]]:
        """Recorded runs, newest first."""
        with self._lock:
            if not self.runs_file.is_file():
                return []
            lines = self.runs_file.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in reversed(lines) if line.strip()]
        records = [r for r in records if job_id is None or r.get("job_id") == job_id]
        return records[:limit] if limit else records

    def _save(self, jobs: list[ScheduleJob]) -> None:
        """Atomic replace: a crash leaves the old or the new file, never half of one.
        Mode 0600 because a DB source may hold a password."""
        self.dir.mkdir(parents=True, exist_ok=True)
        partial = self.jobs_file.with_name(f".{JOBS_FILE}.{os.getpid()}.tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump([job.to_dict() for job in jobs], fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, self.jobs_file)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# ---------------------------------------------------------------------- running a job
def run_db_job(lakehouse: Lakehouse, spec: dict[str, Any]) -> Any:
    """Hook for kind "db": `lakehouse.ingest.db_sync.sync_db(lakehouse, **spec)`, imported
    lazily so file schedules work in builds without database support."""
    try:
        module = importlib.import_module(DB_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != DB_MODULE:
            raise InvalidInput(f"database ingest is unavailable: missing module {exc.name!r}") from None
        raise InvalidInput(f"database schedules need {DB_MODULE}, which this installation does not have") from None
    sync = getattr(module, DB_SYNC_FUNCTION, None)
    if not callable(sync):
        raise InvalidInput(f"{DB_MODULE} has no {DB_SYNC_FUNCTION}(lakehouse, dsn, ...) function")
    return sync(lakehouse, **spec)


def rows_of(result: Any) -> int:
    """Rows written, from an `IngestResult`-like object or a dict (the DB sync's shape is its own)."""
    if isinstance(result, dict):
        return int(result.get("rows_written", result.get("rows", 0)) or 0)
    return int(getattr(result, "rows_written", 0) or 0)


def file_job_paths(job: ScheduleJob, data_path: Path) -> list[Path]:
    pattern = Path(job.path).expanduser()
    pattern = pattern if pattern.is_absolute() else data_path / pattern
    matches = (Path(p) for p in sorted(glob(str(pattern), recursive=True)))
    return [p for p in matches if p.is_file() and is_candidate_name(p.name)]


def execute_job(guard: Guard, job: ScheduleJob, data_path: Path) -> dict[str, Any]:
    """Run `job` once: {status, rows, error, files?}. Never raises."""
    if job.kind == "db":
        return execute_db_job(guard, job)
    ingest_job = f"schedule:{job.id}"
    paths = file_job_paths(job, data_path)
    if not paths:
        return {"status": "failed", "rows": 0, "error": {"error": "NoFiles", "message": f"no file matches {job.path!r}"}}
    outcomes = [ingest_dropped_file(guard, path, job.dataset, job.mode, job=ingest_job,
                                    source_system="schedule", actor=SCHEDULE_ACTOR) for path in paths]
    failed = [o for o in outcomes if o.status == "failed"]
    status = "failed" if failed else ("noop" if all(o.status == "noop" for o in outcomes) else "ok")
    error = {"error": "FilesFailed", "message": f"{len(failed)} of {len(outcomes)} file(s) failed",
             "first": failed[0].error} if failed else None
    files = [{"path": str(path), **{k: v for k, v in o.to_dict().items() if k not in ("moved_to", "at")}}
             for path, o in zip(paths, outcomes)]
    return {"status": status, "rows": sum(o.rows_written for o in outcomes), "error": error, "files": files}


def execute_db_job(guard: Guard, job: ScheduleJob) -> dict[str, Any]:
    overrides = {"name": job.dataset, "mode": job.mode}
    spec = {**(job.source or {}), **{k: v for k, v in overrides.items() if v}, "actor": SCHEDULE_ACTOR}
    try:
        with guard.use() as lakehouse:
            return {"status": "ok", "rows": rows_of(run_db_job(lakehouse, spec)), "error": None}
    except Exception as exc:  # noqa: BLE001 - a failed run is recorded, not raised
        if not isinstance(exc, LakehouseError):
            log.exception("schedule %s failed", job.id)  # sync_db scrubs the DSN from its errors
        return {"status": "failed", "rows": 0, "error": error_body(exc)}


# ---------------------------------------------------------------------- the scheduler
class Scheduler:
    """Runs the stored jobs; `add`/`remove` persist and (re)schedule at once."""

    def __init__(self, guard: Guard, data_path: Path, *, misfire_grace_s: float = 3600.0, store: ScheduleStore | None = None):
        self.guard = guard
        self.data_path = Path(data_path)
        self.store = store or ScheduleStore(self.data_path)
        self.misfire_grace_s = misfire_grace_s
        # One worker: runs are serialized like inbox drops (the facade takes one writer).
        self._aps = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": misfire_grace_s or None},
        )

    def start(self) -> Scheduler:
        now = utc_now()
        for job in self.store.jobs():
            self._schedule(job)
            self._catch_up(job, now)
        self._aps.start()
        log.info("scheduler started with %d job(s)", len(self.store.jobs()))
        return self

    def stop(self, wait: bool = True) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=wait)

    # -------------------------------------------------------------- the API (same as the store's)
    def jobs(self) -> list[ScheduleJob]:
        return self.store.jobs()

    def add(self, job: ScheduleJob) -> ScheduleJob:
        self.store.add(job)
        self._schedule(job)
        return job

    def remove(self, job_id: str) -> ScheduleJob:
        job = self.store.remove(job_id)
        if self._aps.get_job(job_id) is not None:
            self._aps.remove_job(job_id)
        return job

    def runs(self, job_id: str | None = None, limit: int | None = 100) -> list[dict[str, Any]]:
        return self.store.runs(job_id, limit)

    def next_run_times(self) -> dict[str, str | None]:
        return {job.id: job.next_run_time.isoformat() if job.next_run_time else None for job in self._aps.get_jobs()}

    # -------------------------------------------------------------- runs
    def run(self, job_id: str, trigger: Trigger = "manual") -> dict[str, Any]:
        """Run a stored job now and record the run."""
        job = self.store.get(job_id)
        start, started = utc_now(), time.perf_counter()
        self.store.mark_ran(job.id, start)
        outcome = execute_job(self.guard, job, self.data_path)
        duration = time.perf_counter() - started
        return self._record({"job_id": job.id, "trigger": trigger, "kind": job.kind, "dataset": job.dataset,
                             "start": start.isoformat(), "end": utc_now().isoformat(), "duration_s": round(duration, 3),
                             **outcome})

    def _run_scheduled(self, job_id: str, trigger: Trigger) -> None:
        try:
            self.run(job_id, trigger)
        except NotFound:
            pass  # removed between firing and running

    def _schedule(self, job: ScheduleJob) -> None:
        self._aps.add_job(self._run_scheduled, parse_cron(job.cron), args=[job.id, "cron"], id=job.id,
                          name=job.id, replace_existing=True)

    def _catch_up(self, job: ScheduleJob, now: datetime) -> None:
        since = ensure_aware(datetime.fromisoformat(job.last_run_at or job.created_at))
        verdict = missed_run(parse_cron(job.cron), since, now, self.misfire_grace_s)
        if verdict == "run":
            log.info("schedule %s missed a run while the agent was down: running it once now", job.id)
            self._aps.add_job(self._run_scheduled, "date", run_date=now, args=[job.id, "catch_up"],
                              id=f"{job.id}#catch_up", misfire_grace_time=None)
        elif verdict == "skip":
            self.store.mark_ran(job.id, now)
            self._record({"job_id": job.id, "trigger": "catch_up", "kind": job.kind, "dataset": job.dataset,
                          "start": now.isoformat(), "end": now.isoformat(), "duration_s": 0.0, "status": "missed", "rows": 0,
                          "error": {"error": "Missed", "message": f"missed runs since {since.isoformat()} are older than "
                                                                  f"misfire_grace_seconds={self.misfire_grace_s:g}; not run"}})

    def _record(self, run: dict[str, Any]) -> dict[str, Any]:
        self.store.record_run(run)
        log.info("schedule %s (%s): %s, %s rows", run["job_id"], run["trigger"], run["status"], run.get("rows"))
        return run


def ensure_aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
