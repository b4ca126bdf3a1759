"""`lakehouse watch` (the agent in the foreground) and `lakehouse schedule ...`.

Registered on the main app by `register(app)` (one line in `cli.py`). `watch` needs
to own the data directory; `schedule` commands work on it directly, or through the
running gateway when that owns it (DESIGN decision 6).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

schedule_app = typer.Typer(help="Cron-style ingest jobs: list, add, remove, runs.", no_args_is_help=True)

RUN_COLUMNS = ["start", "job_id", "trigger", "status", "rows", "duration_s", "error"]
JOB_COLUMNS = ["id", "cron", "kind", "dataset", "mode", "path", "source", "last_run_at", "next_run_at"]


# ---------------------------------------------------------------------- watch
def watch(
    ctx: typer.Context,
    inbox: Optional[bool] = typer.Option(None, "--inbox/--no-inbox", help="watch the inbox [default: daemon.watch_inbox]"),
    schedules: Optional[bool] = typer.Option(None, "--schedules/--no-schedules", help="run schedules [default: daemon.run_schedules]"),
) -> None:
    """Run the agent in the foreground: ingest inbox drops and run the schedules until stopped."""
    from rich.live import Live

    from lakehouse.cli import config_of, stderr_console
    from lakehouse.daemon.agent import start_background
    from lakehouse.errors import DataDirLocked
    from lakehouse.gateway.app import configure_logging, exit_cleanly_on_sigterm
    from lakehouse.lakehouse import Lakehouse

    config = config_of(ctx)
    configure_logging()
    exit_cleanly_on_sigterm()
    try:
        lakehouse = Lakehouse(config=config)
    except DataDirLocked as exc:
        raise DataDirLocked(f"{exc.args[0]}; if the gateway runs, it runs the agent itself ([daemon] in lakehouse.toml)") from None
    console = stderr_console()
    with lakehouse:
        # Each drop and run is logged (journald-friendly); the live line sums them up on a terminal.
        agent = start_background(lakehouse, config, watch_inbox=inbox, run_schedules=schedules)
        console.print(f"agent on {lakehouse.path}: inbox {config.inbox_path if agent.inbox else 'off'}, "
                      f"schedules {'on' if agent.scheduler else 'off'} (Ctrl-C stops)")
        try:
            with Live(status_line(agent), console=console, refresh_per_second=2, transient=True) as live:
                while True:
                    time.sleep(0.5)
                    live.update(status_line(agent))
        except KeyboardInterrupt:
            pass
        finally:
            agent.stop()


def status_line(agent: Any) -> str:
    parts = []
    if agent.inbox is not None:
        counts = agent.inbox.counts
        parts.append(f"inbox: {counts['ingested']} ingested, {counts['noop']} noop, {counts['failed']} failed, "
                     f"{len(agent.inbox.pending)} settling, {agent.inbox.queued} queued")
    if agent.scheduler is not None:
        upcoming = sorted(t for t in agent.scheduler.next_run_times().values() if t)
        parts.append(f"schedules: next run {upcoming[0] if upcoming else 'none'}")
    return " | ".join(parts) or "agent idle (inbox and schedules are off)"


# ---------------------------------------------------------------------- schedule backends
class LocalSchedules:
    """We own the data directory: the store directly."""

    def __init__(self, data_path: Path):
        from lakehouse.daemon.schedules import ScheduleStore

        self.store = ScheduleStore(data_path)

    def list(self) -> list[dict[str, Any]]:
        return [job.public() for job in self.store.jobs()]

    def add(self, values: dict[str, Any]) -> dict[str, Any]:
        from lakehouse.daemon.schedules import ScheduleJob

        return self.store.add(ScheduleJob.from_dict(values)).public()

    def remove(self, job_id: str) -> dict[str, Any]:
        return self.store.remove(job_id).public()

    def runs(self, job_id: str | None, limit: int | None) -> list[dict[str, Any]]:
        return self.store.runs(job_id, limit)


class RemoteSchedules:
    """The gateway owns the data directory: its /schedules routes."""

    def __init__(self, client: Any):
        self.client = client

    def list(self) -> list[dict[str, Any]]:
        return self.client.schedules()

    def add(self, values: dict[str, Any]) -> dict[str, Any]:
        return self.client.add_schedule(values)

    def remove(self, job_id: str) -> dict[str, Any]:
        return self.client.remove_schedule(job_id)

    def runs(self, job_id: str | None, limit: int | None) -> list[dict[str, Any]]:
        return self.client.schedule_runs(job_id, limit)


@contextmanager
def schedules_backend(ctx: typer.Context) -> Iterator[LocalSchedules | RemoteSchedules]:
    from lakehouse.cli import config_of, open_backend
    from lakehouse.lakehouse import Lakehouse

    with open_backend(config_of(ctx)) as backend:
        yield LocalSchedules(backend.path) if isinstance(backend, Lakehouse) else RemoteSchedules(backend)


# ---------------------------------------------------------------------- schedule commands
@schedule_app.command("list")
def schedule_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the ingest schedules (DSN passwords masked)."""
    from lakehouse.cli import print_json, print_records

    with schedules_backend(ctx) as schedules:
        jobs = schedules.list()
    print_json(jobs) if as_json else print_records(jobs, "schedules", JOB_COLUMNS)


@schedule_app.command("add")
def schedule_add(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="unique job name"),
    cron: str = typer.Option(..., "--cron", help="crontab line, e.g. '0 2 * * *' (6 fields = seconds first)"),
    path: Optional[str] = typer.Option(None, "--path", help="file or glob to ingest (quote globs)"),
    db: Optional[str] = typer.Option(None, "--db", help='DB source as JSON: {"dsn": ..., "table": ..., "watermark": ...}'),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-n", help="dataset name (default: from each file name / the table)"),
    mode: Optional[str] = typer.Option(None, "--mode", help="append | replace"),
) -> None:
    """Add a cron-style ingest job (a file path/glob, or a database source)."""
    from lakehouse.cli import print_mapping

    if (path is None) == (db is None):
        raise typer.BadParameter("give exactly one of --path or --db")
    values: dict[str, Any] = {"id": job_id, "cron": cron, "dataset": dataset, "mode": mode}
    if path is not None:
        # Relative to where the command is typed (the store itself resolves relative paths in the data dir).
        values.update(kind="file", path=str(Path(path).expanduser().absolute()))
    else:
        values.update(kind="db", source=parse_db_source(db))
    with schedules_backend(ctx) as schedules:
        job = schedules.add(values)
    print_mapping(job, f"schedule {job_id} added")


def parse_db_source(text: str) -> dict[str, Any]:
    try:
        source = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--db") from None
    if not isinstance(source, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--db")
    return source


@schedule_app.command("remove")
def schedule_remove(ctx: typer.Context, job_id: str = typer.Argument(..., help="the job to remove")) -> None:
    """Remove an ingest job (its recorded runs stay)."""
    from lakehouse.cli import print_mapping

    with schedules_backend(ctx) as schedules:
        job = schedules.remove(job_id)
    print_mapping(job, f"schedule {job_id} removed")


@schedule_app.command("runs")
def schedule_runs(
    ctx: typer.Context,
    job_id: Optional[str] = typer.Option(None, "--job", help="only this job's runs"),
    limit: int = typer.Option(20, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json", help="print JSON (with per-file details)"),
) -> None:
    """Recorded runs, newest first."""
    from lakehouse.cli import print_json, print_records

    with schedules_backend(ctx) as schedules:
        runs = schedules.runs(job_id, limit)
    print_json(runs) if as_json else print_records(runs, "schedule runs", RUN_COLUMNS)


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)
    app.add_typer(schedule_app, name="schedule")
