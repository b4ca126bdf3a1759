"""`/vectors/hybrid` and `/vectors/playbook_memory/*`: the ranked, explained shortlist
and the memory that teaches it (seed a sealed fill, record a no-show, patterns, stats)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from lakehouse.config import ApiKey
from lakehouse.gateway.api_errors import SafeJSONResponse
from lakehouse.gateway.auth import authenticated, may_write
from lakehouse.gateway.routes_vectors import vector_indexes
from lakehouse.gateway.state import gateway_state
from lakehouse.intelligence.hybrid import HybridQuery, hybrid_search

router = APIRouter(tags=["intelligence"], dependencies=[Depends(authenticated)])


class HybridRequest(BaseModel):
    query: str = Field(min_length=1, description="what the recruiter typed, e.g. 'reliable welder with OSHA-10'")
    k: int = Field(default=10, ge=1, le=500)
    role: str | None = None
    city: str | None = None
    state: str | None = None
    availability: str | None = None
    certifications: list[str] = Field(default_factory=list, description="each must appear in the worker's certifications")
    min_reliability: float | None = Field(default=None, ge=0, le=1)
    max_pay_rate: float | None = Field(default=None, ge=0)
    radius_miles: float | None = Field(default=None, gt=0, description="around lat/lon, or around `city`")
    lat: float | None = None
    lon: float | None = None
    sql_filter: str | None = Field(default=None, description="extra SQL boolean expression over the workers table (read-only)")
    exclude_worker_ids: list[str] = Field(default_factory=list)
    booked_between: list[str] | None = Field(
        default=None, min_length=2, max_length=2,
        description="[first day, last day] of a shift (YYYY-MM-DD): workers that `bookings_dataset` books for an "
                    "overlapping shift are left out and listed under `bookings.excluded`")
    bookings_dataset: str = Field(default="placements", description="placements: worker_id, start_date, end_date, outcome")
    columns: list[str] = Field(default_factory=list, description="dataset columns to return with each source besides the ranking ones")
    use_playbook_memory: bool = True
    playbook_memory_k: int = Field(default=200, ge=1, le=10_000)
    index: str = "workers"
    dataset: str = "workers"


class EndorsedWorker(BaseModel):
    worker_id: str
    name: str = ""


class SeedRequest(BaseModel):
    role: str
    city: str
    state: str
    workers: list[EndorsedWorker] = Field(min_length=1)
    operation: str | None = Field(default=None, description="default: '<role> x<n> in <city>, <state>'")
    date: str | None = Field(default=None, description="YYYY-MM-DD of the fill (default today)")
    staffer: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class FailureRequest(BaseModel):
    worker_id: str
    name: str = ""
    city: str
    state: str


class CompactRequest(BaseModel):
    ttl_days: float = Field(default=365, gt=0)
    decay_floor: float = Field(default=1e-4, ge=0)
    merge_cosine: float = Field(default=0.98, gt=0, le=1)


def _lake(request: Request):
    vector_indexes(request)  # wires the facade lock into the vector layer
    return gateway_state(request).guard


def _reading(request: Request, *parts: str):
    """The guard, for a call that only reads: the facade parts it uses are created
    first (once, under the exclusive side), then `.read()` shares the facade."""
    guard = _lake(request)
    guard.built(*parts)
    return guard


@router.post("/vectors/hybrid", summary="SQL filter + semantic rank + playbook boost, explained")
async def hybrid(body: HybridRequest, request: Request) -> SafeJSONResponse:
    def search() -> SafeJSONResponse:  # the answer is rendered on the worker thread too
        parts = ("playbooks",) if body.use_playbook_memory else ()
        with _reading(request, *parts).read() as lake:
            return SafeJSONResponse(hybrid_search(lake, HybridQuery(**body.model_dump())))

    return await gateway_state(request).run_search(search)


@router.post("/vectors/playbook_memory/seed", summary="Record a sealed fill (ADD, UPDATE or NOOP)")
def seed(body: SeedRequest, request: Request, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    with _lake(request).use() as lake:
        result = lake.playbooks.seed(body.model_dump(), actor=key.name)
    return SafeJSONResponse(result, status_code=201 if result["op"] == "ADD" else 200)


@router.post("/vectors/playbook_memory/mark_failed", summary="Record a no-show: the worker's boost halves from the next query")
def mark_failed(body: FailureRequest, request: Request, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    with _lake(request).use() as lake:
        failures = lake.playbooks.mark_failed(body.city, body.state, body.worker_id, body.name, actor=key.name)
    return SafeJSONResponse({"worker_id": body.worker_id, "failures": failures})


@router.delete("/vectors/playbook_memory/{playbook_id}", summary="Delete a playbook")
def delete(playbook_id: str, request: Request, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    with _lake(request).use() as lake:
        return SafeJSONResponse(lake.playbooks.delete(playbook_id, actor=key.name))


@router.get("/vectors/playbook_memory/patterns", summary="What similar past fills had in common")
def patterns(request: Request, query: str, k: int = 25, city: str | None = None, state: str | None = None, role: str | None = None,
             prior_role: str | None = None) -> SafeJSONResponse:
    """`prior_role` adds `similar_in_role`: the most similar fills of that role in the same place."""
    with _reading(request, "playbooks").read() as lake:
        return SafeJSONResponse(lake.playbooks.patterns(query, k=k, city=city, state=state, role=role, prior_role=prior_role))


@router.get("/vectors/playbook_memory/stats", summary="Totals, endorsed names, new today")
def stats(request: Request) -> SafeJSONResponse:
    with _reading(request, "playbooks").read() as lake:
        return SafeJSONResponse(lake.playbooks.stats())


@router.post("/vectors/playbook_memory/compact", summary="TTL + decay floor + merge of near-duplicates; reports what went")
def compact(body: CompactRequest, request: Request, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    with _lake(request).use() as lake:
        return SafeJSONResponse(lake.playbooks.compact(**body.model_dump(), actor=key.name))
