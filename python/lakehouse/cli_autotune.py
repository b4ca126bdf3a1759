"""`lakehouse autotune ...` and `lakehouse profiles ...`.

Works on the data directory directly, or through the running gateway when it owns the
directory (the same pattern as `lakehouse vectors`): an autotune run shows a progress
bar either way (trials done / planned), locally from the run's callback, remotely by
polling the job.
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote

import typer

from lakehouse.cli_vectors import _backend, _follow_job, _is_local, _with_progress

autotune_app = typer.Typer(help="HNSW autotune: run trials, show status and trials, roll back.", no_args_is_help=True)
profiles_app = typer.Typer(help="Profiles (named scopes): list, add, remove, activate, search, audit.", no_args_is_help=True)

_ALIASES = {"m": "connectivity", "connectivity": "connectivity", "efc": "ef_construction", "ef_construction": "ef_construction",
            "ef": "ef_search", "efs": "ef_search", "ef_search": "ef_search", "q": "quantization", "quantization": "quantization"}


def _segment(name: str) -> str:
    return quote(name, safe="")


def parse_config(text: str) -> dict[str, Any]:
    """'m=16,efc=128,ef=64' (or the long names) -> HNSW settings."""
    config: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        name = _ALIASES.get(key.strip().lower())
        if not sep or name is None:
            raise typer.BadParameter(f"{part!r}: use m=, efc=, ef= or q= (e.g. 'm=16,efc=128,ef=64')")
        config[name] = value.strip() if name == "quantization" else int(value)
    return config


# ---------------------------------------------------------------------- autotune
@autotune_app.command("run")
def autotune_run(
    ctx: typer.Context,
    index: str = typer.Argument(..., help="vector index to tune"),
    budget: int = typer.Option(8, "--budget", "-b", min=1, max=200, help="trials to run"),
    gate: Optional[float] = typer.Option(None, "--gate", help="recall@10 gate [default: [vectors] autotune_recall_gate]"),
    config: list[str] = typer.Option([], "--config", "-c", help="exact configuration to try, e.g. 'm=16,efc=128,ef=48' (repeat)"),
    query: list[str] = typer.Option([], "--query", "-q", help="real query text for the evaluation set (repeat)"),
) -> None:
    """Try HNSW configurations and promote Pareto winners that pass the recall gate."""
    from lakehouse.cli import print_mapping, print_records

    configs = [parse_config(c) for c in config] or None
    with _backend(ctx) as backend:
        if _is_local(backend):
            from lakehouse.vectors.autotune import Autotuner

            tuner = Autotuner(backend.vectors)
            result = _with_progress(f"autotune {index}", lambda p: tuner.run(
                index, budget=budget, gate=gate, configs=configs, texts=query or None, progress=p))
        else:
            body = {"budget": budget, "gate": gate, "configs": configs, "queries": query or None}
            job = backend._json("POST", f"/vectors/autotune/{_segment(index)}", json={k: v for k, v in body.items() if v is not None})["job"]
            result = _follow_job(backend, job, f"autotune {index}")
    rows = [{**t, **{k: t["config"].get(k) for k in ("connectivity", "ef_construction", "ef_search")}} for t in result["trials"]]
    print_records(rows, f"autotune {index}: run {result['run_id']}",
                  ["trial", "connectivity", "ef_construction", "ef_search", "recall", "p50_us", "p95_us", "build_s", "promoted", "reason"])
    print_mapping({"promoted": result["promoted"], "active": result["active"], "gate": result["gate"],
                   "eval": f"{result['eval']['queries']} queries ({result['eval']['source']}), k={result['eval']['k']}",
                   "seconds": result["seconds"]}, f"autotune {index}")


@autotune_app.command("status")
def autotune_status(ctx: typer.Context, index: str = typer.Argument(...), limit: int = typer.Option(10, "--limit", min=0)) -> None:
    """The active configuration, the last trials, and whether a re-run is due."""
    from lakehouse.cli import print_mapping, print_records

    with _backend(ctx) as backend:
        if _is_local(backend):
            from lakehouse.vectors.autotune import Autotuner

            status = Autotuner(backend.vectors).status(index, limit=limit)
        else:
            status = backend._json("GET", f"/vectors/autotune/{_segment(index)}", params={"limit": limit})
    trials = status.pop("trials")
    print_mapping(status, f"autotune {index}")
    _print_trials(trials, f"{index}: last trials", print_records)


def _print_trials(trials: list[dict[str, Any]], title: str, print_records: Any) -> None:
    rows = [{**t, **{k: (t.get("config") or {}).get(k) for k in ("connectivity", "ef_construction", "ef_search")}} for t in trials]
    print_records(rows, title, ["run_id", "trial", "connectivity", "ef_construction", "ef_search", "recall", "p50_us", "p95_us",
                                "build_s", "promoted", "version"])


@autotune_app.command("trials")
def autotune_trials(ctx: typer.Context, index: str = typer.Argument(...), limit: Optional[int] = typer.Option(None, "--limit", min=1)) -> None:
    """The trial journal of an index (oldest first)."""
    from lakehouse.cli import print_records

    with _backend(ctx) as backend:
        if _is_local(backend):
            from lakehouse.vectors.autotune import Autotuner

            rows = Autotuner(backend.vectors).trials(index, limit)
        else:
            rows = backend._json("GET", f"/vectors/trials/{_segment(index)}", params={"limit": limit} if limit else None)["trials"]
    _print_trials(rows, f"{index}: trials", print_records)


@autotune_app.command("rollback")
def autotune_rollback(ctx: typer.Context, index: str = typer.Argument(...)) -> None:
    """Re-activate the version that was active before the current one."""
    from lakehouse.cli import print_mapping

    with _backend(ctx) as backend:
        if _is_local(backend):
            from lakehouse.vectors.autotune import Autotuner

            result = Autotuner(backend.vectors).rollback(index)
        else:
            result = backend._json("POST", f"/vectors/autotune/{_segment(index)}/rollback")
    print_mapping(result, f"{index} rolled back")


# ---------------------------------------------------------------------- profiles
def _profiles(backend: Any):
    from lakehouse.vectors.profiles import Profiles

    return Profiles(backend.vectors)


@profiles_app.command("list")
def profiles_list(ctx: typer.Context) -> None:
    """Every profile with its bindings and settings."""
    from lakehouse.cli import print_records

    with _backend(ctx) as backend:
        rows = _profiles(backend).list() if _is_local(backend) else backend._json("GET", "/vectors/profiles")["profiles"]
    print_records(rows, "profiles", ["name", "bound", "allowed_indexes", "hnsw", "vector_backend", "bucket", "embedding_model", "activated_at"])


@profiles_app.command("add")
def profiles_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="profile name"),
    bind: list[str] = typer.Option(..., "--bind", "-b", help="index (or dataset) the profile may search (repeat)"),
    hnsw: Optional[str] = typer.Option(None, "--hnsw", help="HNSW override, e.g. 'm=16,efc=128,ef=48'"),
    vector_backend: Optional[str] = typer.Option(None, "--backend", help="hnsw | lance"),
    bucket: Optional[str] = typer.Option(None, "--bucket"),
    model: Optional[str] = typer.Option(None, "--model", help="embedding model of the profile"),
    description: Optional[str] = typer.Option(None, "--description", "-d"),
) -> None:
    """Create (or replace) a profile."""
    from lakehouse.cli import print_mapping

    settings = parse_config(hnsw) if hnsw else None
    with _backend(ctx) as backend:
        if _is_local(backend):
            profile = _profiles(backend).put(name, bind, hnsw=settings, vector_backend=vector_backend, bucket=bucket,
                                             embedding_model=model, description=description)
        else:
            body = {"name": name, "bound": bind, "hnsw": settings, "vector_backend": vector_backend, "bucket": bucket,
                    "embedding_model": model, "description": description}
            profile = backend._json("POST", "/vectors/profiles", json={k: v for k, v in body.items() if v is not None})
    print_mapping(profile, f"profile {name}")


@profiles_app.command("remove")
def profiles_remove(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Delete a profile (its audit entries stay)."""
    with _backend(ctx) as backend:
        if _is_local(backend):
            _profiles(backend).remove(name)
        else:
            backend._json("DELETE", f"/vectors/profiles/{_segment(name)}")
    typer.echo(f"removed profile {name}")


@profiles_app.command("activate")
def profiles_activate(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Warm the profile's bound indexes (and apply its HNSW override)."""
    from lakehouse.cli import print_mapping

    with _backend(ctx) as backend:
        if _is_local(backend):
            result = _with_progress(f"activating {name}", lambda p: _profiles(backend).activate(name))
        else:
            answer = backend._json("POST", f"/vectors/profiles/{_segment(name)}/activate")
            result = _follow_job(backend, answer["job"], f"activating {name}") if "job" in answer else answer
    print_mapping(result, f"profile {name} activated")


@profiles_app.command("search")
def profiles_search(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="profile"),
    index: str = typer.Argument(...),
    query: str = typer.Argument(...),
    k: int = typer.Option(10, "--k", "-k", min=1, max=1000),
) -> None:
    """Semantic top-k through a profile (refused outside its bindings; audited)."""
    from lakehouse.cli import print_records

    with _backend(ctx) as backend:
        if _is_local(backend):
            result = _profiles(backend).search(name, index, query, k)
        else:
            result = backend._json("POST", f"/vectors/profiles/{_segment(name)}/search", json={"index": index, "query": query, "k": k})
    print_records(result["hits"], f"{name} / {index} v{result['version']} ({result['path']})", ["doc_id", "score"])


@profiles_app.command("audit")
def profiles_audit(
    ctx: typer.Context,
    profile: Optional[str] = typer.Option(None, "--profile", "-p"),
    actor: Optional[str] = typer.Option(None, "--actor", "-a"),
    since: Optional[str] = typer.Option(None, "--since", help="ISO 8601 time"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1),
) -> None:
    """Audited profile searches: who, profile, index, query, when, result count."""
    from lakehouse.cli import print_records

    with _backend(ctx) as backend:
        if _is_local(backend):
            rows = _profiles(backend).audit(profile, actor, since, limit=limit)
        else:
            params = {k: v for k, v in {"profile": profile, "actor": actor, "since": since, "limit": limit}.items() if v is not None}
            rows = backend._json("GET", "/vectors/profiles/audit", params=params)["entries"]
    print_records(rows, "profile audit", ["at", "actor", "profile", "index", "query", "k", "status", "results"])


def register(app: typer.Typer) -> None:
    app.add_typer(autotune_app, name="autotune")
    app.add_typer(profiles_app, name="profiles")


__all__ = ["autotune_app", "profiles_app", "register", "parse_config"]
