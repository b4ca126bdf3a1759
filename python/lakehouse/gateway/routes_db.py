"""`POST /ingest/db`: stream a PostgreSQL / MySQL table or query into a dataset.

The sync runs under the facade lock like every other mutation (one commit per sync);
a failing source database answers 502 with the reason, its password scrubbed.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from lakehouse.config import ApiKey
from lakehouse.gateway.api_errors import SafeJSONResponse
from lakehouse.gateway.auth import authenticated, may_write
from lakehouse.gateway.state import gateway_state
from lakehouse.ingest.db_sync import sync_db

router = APIRouter(tags=["ingest"], dependencies=[Depends(authenticated)])


class DbIngestRequest(BaseModel):
    dsn: str = Field(description="postgresql://user@host:port/db or mysql://user@host:port/db (a password in it is never stored)")
    table: str | None = Field(default=None, description="table to read (schema.table allowed)")
    query: str | None = Field(default=None, description="SELECT to read instead of a table (needs name)")
    name: str | None = Field(default=None, description="dataset name (default: the table name)")
    watermark: str | None = Field(
        default=None, description="incremental: only rows with this column >= the last synced value that were not synced yet")
    key: str | None = Field(
        default=None, description="with a watermark: rows whose key is already in the dataset replace it (mode upsert)")
    batch_rows: int | None = Field(default=None, ge=1, description="rows per Arrow batch (default 50000)")
    mode: Literal["append", "replace", "upsert"] | None = Field(
        default=None, description="default: upsert with a key, append with a watermark, else replace")
    password: str | None = Field(default=None, description="the database password, apart from the DSN (used, never stored)")
    password_env: str | None = Field(
        default=None, description="read the password from this environment variable of the gateway (LAKEHOUSE_*, PGPASSWORD or MYSQL_PWD)")


@router.post(
    "/ingest/db",
    summary="Stream a database table or query into a dataset",
    description=(
        "Reads with a server-side cursor in bounded Arrow batches and commits once: a dropped connection writes "
        "nothing and the next sync resumes from the last committed watermark. Every run is logged in "
        "`<data_dir>/_sync/sync_log.jsonl`. With a `key`, rows with a known key replace it (a delete commit, then an "
        "append commit). 201 when the dataset was created, 200 otherwise; 502 when the source fails."
    ),
    status_code=201,
)
def ingest_db(body: DbIngestRequest, request: Request, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    with gateway_state(request).guard.use() as lakehouse:
        result = sync_db(lakehouse, **body.model_dump(), actor=key.name)
    return SafeJSONResponse(result, status_code=201 if result["dataset_status"] == "created" else 200)
