"""`/vectors/autotune/*`, `/vectors/trials/*` and `/vectors/profiles/*`: the autotune
agent's trials and promotions, and profiles (named scopes with audited search).

Autotune runs are background jobs (`GET /vectors/jobs/<id>` follows them); a profile
search outside the profile's bindings is refused with 403 and the allowed list, and
every profile search is audited (`GET /vectors/profiles/audit`).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from lakehouse.config import ApiKey
from lakehouse.gateway.api_errors import SafeJSONResponse
from lakehouse.gateway.auth import authenticated, may_write
from lakehouse.gateway.routes_vectors import HnswSettings, vector_indexes
from lakehouse.vectors.autotune import Autotuner
from lakehouse.vectors.profiles import Profiles

router = APIRouter(tags=["vectors"], dependencies=[Depends(authenticated)])


class AutotuneRequest(BaseModel):
    budget: int = Field(default=8, ge=1, le=200, description="trials to run")
    gate: float | None = Field(default=None, ge=0.0, le=1.5, description="recall@10 gate (default: [vectors] autotune_recall_gate)")
    configs: list[HnswSettings] | None = Field(default=None, description="exact configurations to try instead of proposals")
    queries: list[str] | None = Field(default=None, description="real query texts for the evaluation set (replaces sampled queries)")
    wait: bool = Field(default=False, description="run before answering (200) instead of as a background job (202)")


class ProfileRequest(BaseModel):
    name: str
    bound: list[str] = Field(min_length=1, description="index names (or dataset names: every index over them)")
    hnsw: HnswSettings | None = None
    vector_backend: Literal["hnsw", "lance"] | None = None
    bucket: str | None = None
    embedding_model: str | None = None
    description: str | None = None


class ProfileSearchRequest(BaseModel):
    index: str
    query: str = Field(min_length=1)
    k: int = Field(default=10, ge=1, le=1000)
    doc_ids: list[str] | None = Field(default=None, description="restrict the result to these documents")


# ---------------------------------------------------------------------- autotune
@router.post("/vectors/autotune/{index}", summary="Run autotune trials on an index (background job)", status_code=202)
def autotune_run(index: str, request: Request, body: AutotuneRequest | None = None, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    body = body or AutotuneRequest()
    indexes = vector_indexes(request)
    tuner = Autotuner(indexes)
    tuner._hnsw_definition(index)  # 404 / 400 now, not inside the job
    configs = [c.model_dump(exclude_none=True) for c in body.configs] if body.configs else None
    args: dict[str, Any] = dict(budget=body.budget, actor=key.name, gate=body.gate, configs=configs, texts=body.queries)
    if body.wait:
        return SafeJSONResponse(tuner.run(index, **args), status_code=200)
    job = indexes.jobs.submit("autotune", index, lambda progress: tuner.run(index, progress=progress, **args))
    return SafeJSONResponse({"job": job.to_dict()}, status_code=202)


@router.get("/vectors/autotune/{index}", summary="Active configuration, last trials, and whether a run is due")
def autotune_status(index: str, request: Request, limit: int = Query(default=10, ge=0, le=10_000)) -> SafeJSONResponse:
    return SafeJSONResponse(Autotuner(vector_indexes(request)).status(index, limit=limit))


@router.post("/vectors/autotune/{index}/rollback", summary="Re-activate the version active before the current one")
def autotune_rollback(index: str, request: Request, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    return SafeJSONResponse(Autotuner(vector_indexes(request)).rollback(index, actor=key.name))


@router.get("/vectors/trials/{index}", summary="The autotune trial journal of an index (oldest first)")
def trials(index: str, request: Request, limit: int | None = Query(default=None, ge=1, le=100_000)) -> SafeJSONResponse:
    return SafeJSONResponse({"index": index, "trials": Autotuner(vector_indexes(request)).trials(index, limit)})


# ---------------------------------------------------------------------- profiles
@router.get("/vectors/profiles", summary="Every profile with its bindings and settings")
def list_profiles(request: Request) -> SafeJSONResponse:
    return SafeJSONResponse({"profiles": Profiles(vector_indexes(request)).list()})


@router.post("/vectors/profiles", summary="Create or replace a profile", status_code=201)
def put_profile(body: ProfileRequest, request: Request, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    profile = Profiles(vector_indexes(request)).put(
        body.name, body.bound, hnsw=body.hnsw.model_dump(exclude_none=True) if body.hnsw else None,
        vector_backend=body.vector_backend, bucket=body.bucket, embedding_model=body.embedding_model,
        description=body.description, actor=key.name,
    )
    return SafeJSONResponse(profile, status_code=201)


@router.get("/vectors/profiles/audit", summary="Audited profile searches (who, profile, index, query, when, results)")
def profile_audit(
    request: Request,
    profile: str | None = None,
    actor: str | None = None,
    since: str | None = Query(default=None, description="ISO 8601 time"),
    index: str | None = None,
    limit: int | None = Query(default=None, ge=1, le=100_000),
) -> SafeJSONResponse:
    entries = Profiles(vector_indexes(request)).audit(profile, actor, since, index=index, limit=limit)
    return SafeJSONResponse({"entries": entries})


@router.get("/vectors/profiles/{name}", summary="One profile")
def get_profile(name: str, request: Request) -> SafeJSONResponse:
    return SafeJSONResponse(Profiles(vector_indexes(request)).get(name))


@router.delete("/vectors/profiles/{name}", summary="Delete a profile (its audit entries stay)")
def delete_profile(name: str, request: Request, key: ApiKey = Depends(may_write)) -> SafeJSONResponse:
    return SafeJSONResponse(Profiles(vector_indexes(request)).remove(name, actor=key.name))


@router.post("/vectors/profiles/{name}/activate", summary="Warm the bound indexes and apply the profile's HNSW settings")
def activate_profile(name: str, request: Request, key: ApiKey = Depends(authenticated)) -> SafeJSONResponse:
    """Any key may activate (warming is a read); applying an HNSW override promotes new
    index versions, so for a read-only key it is reported as `hnsw_pending` instead."""
    indexes = vector_indexes(request)
    profiles = Profiles(indexes)
    if key.can_write and any(p for p in profiles.pending_hnsw(name)):
        job = indexes.jobs.submit("profile_activate", name, lambda progress: profiles.activate(name, actor=key.name))
        return SafeJSONResponse({"job": job.to_dict()}, status_code=202)
    return SafeJSONResponse(profiles.activate(name, actor=key.name, apply_hnsw=False))


@router.post("/vectors/profiles/{name}/search", summary="Semantic top-k through a profile (403 outside its bindings; audited)")
def profile_search(name: str, body: ProfileSearchRequest, request: Request, key: ApiKey = Depends(authenticated)) -> SafeJSONResponse:
    result = Profiles(vector_indexes(request)).search(name, body.index, body.query, body.k, actor=key.name, doc_ids=body.doc_ids)
    return SafeJSONResponse(result)
