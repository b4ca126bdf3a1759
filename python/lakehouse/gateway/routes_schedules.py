"""`/schedules`: the cron-style ingest jobs (`lakehouse.daemon.schedules`).

When the gateway runs the agent (`[daemon] run_schedules`), changes take effect at once;
otherwise they are stored and run by whichever agent owns the data directory next.
Changes take the facade lock's exclusive side, like every other write; the listings
take its shared side.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from lakehouse.config import ApiKey
from lakehouse.daemon.schedules import KINDS, ScheduleExists, ScheduleJob, Scheduler, ScheduleStore
from lakehouse.errors import error_body
from lakehouse.gateway.api_errors import SafeJSONResponse
from lakehouse.gateway.auth import authenticated, may_write
from lakehouse.gateway.state import gateway_state

schedules_router = APIRouter(prefix="/schedules", tags=["schedules"], dependencies=[Depends(authenticated)])


class ScheduleRequest(BaseModel):
    id: str = Field(description="unique name of the job: letters, digits, '_', '.', '-'")
    cron: str = Field(description="crontab line: 5 fields, or 6 with seconds first (machine local time)")
    kind: Literal[KINDS] = Field(description="'file': ingest the files matching `path`; 'db': sync `source`")  # type: ignore[valid-type]
    dataset: str | None = Field(default=None, description="dataset name (default: derived from each file name)")
    # None, not "append": a DB job's default depends on its source (upsert / append / replace).
    mode: Literal["append", "replace", "upsert"] | None = Field(
        default=None, description="default: append for files; for 'db', upsert with a key, append with a watermark, else replace")
    path: str | None = Field(default=None, description="kind 'file': a path or glob; relative ones live in the data directory")
    source: dict[str, Any] | None = Field(
        default=None,
        description="kind 'db': {dsn, table | query, watermark?, key?, batch_rows?, password_env?}, passed to "
                    "lakehouse.ingest.db_sync.sync_db. The DSN must not hold a password: `password_env` names the "
                    "agent's environment variable (LAKEHOUSE_*, PGPASSWORD or MYSQL_PWD) holding it.",
    )


def _schedules(request: Request) -> Scheduler | ScheduleStore:
    """The running scheduler (changes apply at once), else the store alone."""
    agent = getattr(request.app.state, "agent", None)
    if agent is not None and agent.scheduler is not None:
        return agent.scheduler
    return ScheduleStore(gateway_state(request).data_path)


def _respond(
    request: Request, call: Callable[[Scheduler | ScheduleStore], Any], status_code: int = 200, *, read: bool = False
) -> SafeJSONResponse:
    guard = gateway_state(request).guard
    with guard.read() if read else guard.use():
        return SafeJSONResponse(call(_schedules(request)), status_code=status_code)


def _listing(schedules: Scheduler | ScheduleStore) -> list[dict[str, Any]]:
    next_runs = schedules.next_run_times() if isinstance(schedules, Scheduler) else {}
    return [{**job.public(), "next_run_at": next_runs.get(job.id)} for job in schedules.jobs()]


@schedules_router.get("", summary="List ingest schedules (DSN passwords masked)")
def list_schedules(request: Request):
    return _respond(request, _listing, read=True)


@schedules_router.post(
    "", summary="Add an ingest schedule", status_code=201,
    description="201 with the job (DSN masked); 409 `ScheduleExists` when the id is taken (remove that job first); "
                "400 for an invalid job.",
)
def add_schedule(body: ScheduleRequest, request: Request, _: ApiKey = Depends(may_write)):
    job = ScheduleJob.from_dict(body.model_dump())
    try:
        return _respond(request, lambda schedules: schedules.add(job).public(), status_code=201)
    except ScheduleExists as exc:
        # A conflict with the stored state, not a malformed request: 409, like a dataset's schema conflict.
        return SafeJSONResponse({**error_body(exc), "id": job.id}, status_code=409)


@schedules_router.get("/runs", summary="Recorded runs, newest first")
def schedule_runs(request: Request, job_id: str | None = None, limit: int | None = Query(100, ge=1)):
    return _respond(request, lambda schedules: schedules.runs(job_id, limit), read=True)


@schedules_router.delete("/{job_id}", summary="Remove an ingest schedule (its recorded runs stay)")
def remove_schedule(job_id: str, request: Request, _: ApiKey = Depends(may_write)):
    return _respond(request, lambda schedules: schedules.remove(job_id).public())
