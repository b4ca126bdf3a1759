"""`/vectors/*`: create indexes over datasets, search them, refresh them in the
background, and move their active version (promote / rollback).

Searches do not wait for the facade lock while a refresh embeds: the refresh takes it
only to read the dataset and to commit, and the active index version is swapped as one
reference, so a search sees the old version or the new one, never a mix. Searches read
the facade under the lock's shared side, so they run beside each other.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from lakehouse.config import ApiKey
from lakehouse.gateway.api_errors import SafeJSONResponse
from lakehouse.gateway.auth import authenticated, may_write
from lakehouse.gateway.state import gateway_state
from lakehouse.vectors.manager import VectorIndexes

router = APIRouter(tags=["vectors"], dependencies=[Depends(authenticated)])


def vector_indexes(request: Request) -> VectorIndexes:
    """The facade's vector indexes, wired to the gateway's lock: their writes and
    commits take its exclusive side, their pure reads its shared side."""
    guard = gateway_state(request).guard
    guard.built("vectors")
    with guard.read() as lakehouse:
        indexes = lakehouse.vectors
    indexes.facade_lock = guard.write_lock
    indexes.facade_read_lock = guard.read_lock
    return indexes


class HnswSettings(BaseModel):
    connectivity: int | None = Field(default=None, ge=2, le=256, description="M: graph edges per node")
    ef_construction: int | None = Field(default=None, ge=8, le=4096)
    ef_search: int | None = Field(default=None, ge=1, le=4096)
    quantization: Literal["f32", "f16", "bf16", "i8"] | None = None


class CreateIndexRequest(BaseModel):
    dataset: str
    text_columns: list[str] = Field(min_length=1, description="columns joined (space-separated) into the embedded text")
    id_column: str = Field(description="the document id: search results name documents by it")
    name: str | None = Field(default=None, description="index name (default: the dataset name)")
    backend: Literal["hnsw", "lance"] | None = None
    hnsw: HnswSettings | None = None
    wait: bool = Field(default=False, description="build before answering (201) instead of as a background job (202)")


class SearchRequest(BaseModel):
    index: str
    query: str = Field(min_length=1)
    k: int = Field(default=10, ge=1, le=1000)
    doc_ids: list[str] | None = Field(default=None, description="restrict the result to these documents")
    include_unindexed: bool = Field(default=True, description="brute-force rows appended since the last refresh")


class PromoteRequest(BaseModel):
    version: int = Field(ge=1)
    reason: str = "manual"


@router.post("/vectors/index", summary="Create a vector index over a dataset and build it", status_code=202)
def create_index(body: CreateIndexRequest, request: Request, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    indexes = vector_indexes(request)
    hnsw = body.hnsw.model_dump(exclude_none=True) if body.hnsw else None
    args: dict[str, Any] = dict(name=body.name, backend=body.backend, hnsw=hnsw, actor=key.name)
    if body.wait:
        return SafeJSONResponse(indexes.create(body.dataset, body.text_columns, body.id_column, **args), status_code=201)
    indexes.validate_new(body.dataset, body.text_columns, body.id_column, name=body.name, backend=body.backend, hnsw=hnsw)
    job = indexes.jobs.submit(
        "build", body.name or body.dataset,
        lambda progress: indexes.create(body.dataset, body.text_columns, body.id_column, progress=progress, **args),
    )
    return SafeJSONResponse({"job": job.to_dict()}, status_code=202)


@router.get("/vectors/indexes", summary="Every vector index with its active version and staleness")
def list_indexes(request: Request) -> SafeJSONResponse:
    return SafeJSONResponse({"indexes": vector_indexes(request).list()})


@router.post("/vectors/search", summary="Semantic top-k over one index (planned: exact or HNSW by selectivity)")
def search(body: SearchRequest, request: Request) -> SafeJSONResponse:
    result = vector_indexes(request).search(
        body.index, body.query, body.k, doc_ids=body.doc_ids, include_unindexed=body.include_unindexed
    )
    return SafeJSONResponse(result)


@router.post("/vectors/refresh/{dataset}", summary="Embed what changed in a dataset and promote new index versions", status_code=202)
def refresh(dataset: str, request: Request, wait: bool = False, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    indexes = vector_indexes(request)
    if wait:
        return SafeJSONResponse({"results": [indexes.refresh(n, actor=key.name) for n in indexes.indexes_of(dataset) or [dataset]]}, status_code=200)
    jobs = indexes.refresh_in_background(dataset, actor=key.name)
    return SafeJSONResponse({"jobs": [job.to_dict() for job in jobs]}, status_code=202)


@router.get("/vectors/jobs", summary="Recent index builds and refreshes with progress")
def list_jobs(request: Request) -> SafeJSONResponse:
    return SafeJSONResponse({"jobs": vector_indexes(request).jobs.list()})


@router.get("/vectors/jobs/{job_id}", summary="One job's status and progress")
def get_job(job_id: str, request: Request) -> SafeJSONResponse:
    return SafeJSONResponse(vector_indexes(request).jobs.get(job_id).to_dict())


@router.get("/vectors/indexes/{name}/versions", summary="Versions, the active one, and the promotion history")
def versions(name: str, request: Request) -> SafeJSONResponse:
    return SafeJSONResponse(vector_indexes(request).versions(name))


@router.post("/vectors/indexes/{name}/promote", summary="Make a version the active one (atomic)")
def promote(name: str, body: PromoteRequest, request: Request, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    return SafeJSONResponse(vector_indexes(request).promote(name, body.version, actor=key.name, reason=body.reason))


@router.post("/vectors/indexes/{name}/rollback", summary="Re-activate the previously active version")
def rollback(name: str, request: Request, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    return SafeJSONResponse(vector_indexes(request).rollback(name, actor=key.name))
