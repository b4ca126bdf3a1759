"""The endpoints. Each one translates HTTP to one facade call and back; the facade
does the work. Mutations record the caller's key name as the actor."""

from __future__ import annotations

import time
from typing import Any, Callable, Literal, get_args

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from lakehouse import __version__
from lakehouse.config import ApiKey
from lakehouse.errors import InvalidInput, LakehouseError, error_body, http_status
from lakehouse.gateway.api_errors import SafeJSONResponse, lakehouse_error_response
from lakehouse.gateway.auth import authenticated, may_write
from lakehouse.gateway.serialize import ARROW_STREAM_MEDIA_TYPE, RESCUE_HEADER, limit_rows, table_to_ipc, table_to_json
from lakehouse.gateway.state import GatewayState, gateway_state
from lakehouse.gateway.uploads import FILE_FIELD, ReceivedUpload, quarantine, receive_upload
from lakehouse.lakehouse import IngestResult, Lakehouse, Mode

#: /health answers "busy" rather than waiting longer than this behind a long ingest (it only
#: reads, so it waits for writes alone)
HEALTH_LOCK_TIMEOUT_S = 2.0

health_router = APIRouter(tags=["health"])
# Everything except /health needs a key; the dependency on the router enforces it.
ingest_router = APIRouter(tags=["ingest"], dependencies=[Depends(authenticated)])
query_router = APIRouter(tags=["query"], dependencies=[Depends(authenticated)])
catalog_router = APIRouter(prefix="/catalog", tags=["catalog"], dependencies=[Depends(authenticated)])
storage_router = APIRouter(prefix="/storage", tags=["storage"], dependencies=[Depends(authenticated)])
journal_router = APIRouter(tags=["journal"], dependencies=[Depends(authenticated)])
ROUTERS = [health_router, ingest_router, query_router, catalog_router, storage_router, journal_router]


# ---------------------------------------------------------------------- health
@health_router.get("/health", summary="Liveness and basic facts (no API key needed)")
def health(request: Request) -> SafeJSONResponse:
    state = gateway_state(request)
    with state.guard.try_read(HEALTH_LOCK_TIMEOUT_S) as lakehouse:
        datasets = len(lakehouse.datasets()) if lakehouse is not None else None
    return SafeJSONResponse({
        "status": "ok" if lakehouse is not None else "busy",
        "version": __version__,
        "data_dir": str(state.data_path),
        "datasets": datasets,
        "uptime_s": round(time.monotonic() - state.started_at, 3),
    })


# ---------------------------------------------------------------------- ingest
UPLOAD_REQUEST_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "required": [FILE_FIELD],
    "properties": {
        FILE_FIELD: {"type": "string", "format": "binary", "description": "CSV or Parquet file"},
        "name": {"type": "string", "description": "dataset name (default: derived from the file name)"},
        "mode": {"type": "string", "enum": list(get_args(Mode)), "default": "append"},
    },
}}}}}


@ingest_router.post(
    "/ingest/file",
    summary="Upload a file and ingest it into a dataset",
    description=(
        "Streams the upload to disk (refused with 413 above `gateway.max_upload_bytes`) and ingests it. "
        "201 when the dataset was created, 200 otherwise (appended, replaced, or `noop` for bytes seen before). "
        "A file that cannot be ingested is kept in `<data_dir>/_quarantine/` with a `.error.json` giving the reason."
    ),
    status_code=201,
    openapi_extra=UPLOAD_REQUEST_BODY,
)
async def ingest_file(request: Request, key: ApiKey = Depends(may_write)) -> Response:
    state = gateway_state(request)
    upload = await receive_upload(request, state.uploads_dir, state.config.gateway.max_upload_bytes)
    try:
        mode = upload.fields.get("mode") or "append"
        if mode not in get_args(Mode):
            raise InvalidInput(f"mode must be one of {', '.join(get_args(Mode))}, not {mode!r}")
        name = upload.fields.get("name") or None
        return await run_in_threadpool(_ingest_or_quarantine, state, upload, name, mode, key.name)
    finally:
        upload.discard()


def _ingest_or_quarantine(state: GatewayState, upload: ReceivedUpload, name: str | None, mode: str, actor: str) -> Response:
    try:
        with state.guard.use() as lakehouse:
            result: IngestResult = lakehouse.ingest_file(
                upload.path, name, mode=mode, actor=actor, source_system="upload", ingest_job=f"upload:{upload.path.name}"
            )
    except Exception as exc:
        # Nothing is silently dropped: the original bytes and the reason stay on disk.
        report = {**error_body(exc), "status": http_status(exc), "dataset": name, "mode": mode, "actor": actor}
        kept = quarantine(upload, state.quarantine_dir, report)
        if isinstance(exc, LakehouseError):
            return lakehouse_error_response(exc, quarantined_as=str(kept.relative_to(state.data_path)))
        raise
    return SafeJSONResponse(result.to_dict(), status_code=201 if result.status == "created" else 200)


# ---------------------------------------------------------------------- query
class TableAnswer(BaseModel):
    format: Literal["json", "arrow"] = Field(default="json", description="json rows, or an Arrow IPC stream")


class SqlRequest(TableAnswer):
    sql: str = Field(description="read-only SQL over every live dataset (each dataset is a table)")
    limit: int | None = Field(default=None, ge=0, description="return at most this many rows")


@query_router.post(
    "/query/sql",
    summary="Run a read-only SQL query",
    description=(
        "`format=json` returns `{columns, column_types, rows, row_count, elapsed_ms, truncated}` with JSON-safe values "
        "(dates ISO 8601, decimals strings, bytes base64). `format=arrow` returns an Arrow IPC stream "
        f"(`{ARROW_STREAM_MEDIA_TYPE}`). DDL, DML, COPY and external tables are refused with 400. "
        f"`{RESCUE_HEADER}` tells whether any table was read from the rescue bucket."
    ),
    responses={200: {"content": {ARROW_STREAM_MEDIA_TYPE: {}}}},
)
def query_sql(body: SqlRequest, request: Request) -> Response:
    return _table_response(request, lambda lakehouse: lakehouse.sql(body.sql), body.limit, body.format)


class LookupRequest(TableAnswer):
    dataset: str = Field(description="the dataset to read")
    key: str = Field(description="the key column, compared as text")
    keys: list[str | int] = Field(description="the key values wanted; rows come grouped in this order")
    columns: list[str] | None = Field(default=None, description="the columns to return (default: all)")


@query_router.post(
    "/query/lookup",
    summary="Rows by key",
    description=(
        "The rows whose `key` column, compared as text, is one of `keys`, in the order of `keys` (a key the dataset "
        "lacks is simply absent): the same rows as `WHERE CAST(key AS VARCHAR) IN (...)`, answered from an "
        "in-memory key index once the dataset is hot. Same response shapes as `/query/sql`."
    ),
    responses={200: {"content": {ARROW_STREAM_MEDIA_TYPE: {}}}},
)
def query_lookup(body: LookupRequest, request: Request) -> Response:
    return _table_response(request, lambda lakehouse: lakehouse.lookup(body.dataset, body.key, body.keys, body.columns),
                           None, body.format)


def _table_response(request: Request, read: Callable[[Lakehouse], Any], limit: int | None, fmt: str) -> Response:
    """Run a read on the facade and answer with its table as JSON rows or Arrow IPC."""
    state = gateway_state(request)
    with state.guard.read() as lakehouse:  # `rescue_used` is this thread's last query (see Lakehouse.sql)
        started = time.perf_counter()
        try:
            table = read(lakehouse)
        except LakehouseError as exc:
            return lakehouse_error_response(exc, headers=_rescue_header(lakehouse.rescue_used))
        elapsed_ms = (time.perf_counter() - started) * 1000
        headers = _rescue_header(lakehouse.rescue_used)
    shown = limit_rows(table, limit)
    headers["X-Lakehouse-Row-Count"] = str(shown.num_rows)
    if fmt == "arrow":
        return Response(table_to_ipc(shown), media_type=ARROW_STREAM_MEDIA_TYPE, headers=headers)
    payload = {**table_to_json(shown), "elapsed_ms": round(elapsed_ms, 3), "truncated": shown.num_rows < table.num_rows}
    return SafeJSONResponse(payload, headers=headers)


def _rescue_header(used: bool) -> dict[str, str]:
    return {RESCUE_HEADER: "true" if used else "false"}


# ---------------------------------------------------------------------- catalog
class CompactRequest(BaseModel):
    dataset: str | None = Field(default=None, description="compact only this dataset (default: all)")
    target_file_mb: int = Field(default=256, ge=1, description="target size of the merged files")


def _respond(request: Request, call: Callable[[Lakehouse], Any]) -> SafeJSONResponse:
    """Run `call` on the facade with the lock alone (a write) and return the result as JSON."""
    with gateway_state(request).guard.use() as lakehouse:
        return SafeJSONResponse(call(lakehouse))


def _read(request: Request, call: Callable[[Lakehouse], Any]) -> SafeJSONResponse:
    """Like `_respond`, for a `call` that only reads: it runs beside other reads."""
    with gateway_state(request).guard.read() as lakehouse:
        return SafeJSONResponse(call(lakehouse))


@catalog_router.get("/datasets", summary="List datasets")
def list_datasets(request: Request, include_tombstoned: bool = Query(False, description="include soft-deleted datasets")):
    return _read(request, lambda lh: lh.datasets(include_tombstoned))


@catalog_router.get("/datasets/{name}", summary="One dataset's manifest (404 if unknown)")
def get_dataset(name: str, request: Request):
    return _read(request, lambda lh: lh.dataset(name))


@catalog_router.post("/datasets/{name}/tombstone", summary="Soft-delete a dataset (hidden from SQL, restorable)")
def tombstone_dataset(name: str, request: Request, key: ApiKey = Depends(may_write)):
    return _respond(request, lambda lh: lh.tombstone(name, actor=key.name))


@catalog_router.post("/datasets/{name}/restore", summary="Restore a tombstoned dataset")
def restore_dataset(name: str, request: Request, key: ApiKey = Depends(may_write)):
    return _respond(request, lambda lh: lh.restore(name, actor=key.name))


@catalog_router.get("/datasets/{name}/history", summary="Table versions, newest first")
def dataset_history(name: str, request: Request):
    return _read(request, lambda lh: lh.history(name))


@catalog_router.post("/dedupe", summary="Collapse duplicate manifests (idempotent)")
def dedupe(request: Request, key: ApiKey = Depends(may_write)):
    return _respond(request, lambda lh: lh.dedupe(actor=key.name))


@catalog_router.post("/compact", summary="Merge small files (answers unchanged, old versions stay readable)")
def compact(request: Request, body: CompactRequest | None = None, key: ApiKey = Depends(may_write)):
    body = body or CompactRequest()
    return _respond(request, lambda lh: lh.compact(body.dataset, actor=key.name, target_file_mb=body.target_file_mb))


# ---------------------------------------------------------------------- storage & journal
@storage_router.get("/errors", summary="Journaled bucket failures, newest first")
def storage_errors(request: Request, limit: int | None = Query(None, ge=1)):
    return _read(request, lambda lh: lh.storage_errors(limit))


@storage_router.get("/bucket-health", summary="Per-bucket reachability")
def bucket_health(request: Request):
    # Not a read: the check writes and deletes one probe object per bucket (the same path each time).
    return _respond(request, lambda lh: lh.bucket_health())


@journal_router.get("/journal", summary="Mutation events (who, when, what, old -> new)")
def journal(
    request: Request,
    dataset: str | None = None,
    actor: str | None = None,
    since: str | None = Query(None, description="ISO 8601 / RFC 3339 instant, inclusive"),
    until: str | None = Query(None, description="ISO 8601 / RFC 3339 instant, exclusive"),
    operation: str | None = Query(None, description="e.g. create, insert, replace, tombstone, restore, compact"),
    limit: int | None = Query(None, ge=1),
):
    return _read(request, lambda lh: lh.journal(dataset, actor, since, until, operation, limit))
