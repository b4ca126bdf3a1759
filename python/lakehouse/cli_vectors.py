"""`lakehouse vectors ...`: create, search, refresh and version vector indexes.

Works on the data directory directly, or through the running gateway when it owns the
directory; long builds and refreshes show a progress bar either way (locally from the
job's callback, remotely by polling `GET /vectors/jobs/<id>`).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import typer

vectors_app = typer.Typer(help="Vector indexes: create, search, refresh, versions, promote, rollback.", no_args_is_help=True)


def _backend(ctx: typer.Context):
    from lakehouse.cli import config_of, open_backend

    return open_backend(config_of(ctx))


def _is_local(backend: Any) -> bool:
    from lakehouse.lakehouse import Lakehouse

    return isinstance(backend, Lakehouse)


def _with_progress(description: str, work: Callable[[Callable[[int, int], None]], Any]) -> Any:
    from lakehouse.cli import progress_bars

    with progress_bars() as bars:
        task = bars.add_task(description, total=None)
        return work(lambda done, total: bars.update(task, completed=done, total=total or None))


def _follow_job(backend: Any, job: dict[str, Any], description: str) -> dict[str, Any]:
    def poll(progress: Callable[[int, int], None]) -> dict[str, Any]:
        current = job
        while current["status"] in ("queued", "running"):
            time.sleep(0.25)
            current = backend.vectors_job(job["id"])
            progress(current["progress"]["done"], current["progress"]["total"])
        return current

    finished = _with_progress(description, poll)
    if finished["status"] != "succeeded":
        raise typer.Exit(_fail(f"{description} failed: {finished['error']}"))
    return finished["result"]


def _fail(message: str) -> int:
    from lakehouse.cli import stderr_console

    stderr_console().print(f"[red]error:[/] {message}")
    return 1


@vectors_app.command("index")
def create_index(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="dataset to embed"),
    text: list[str] = typer.Option(..., "--text", "-t", help="text column(s) to embed (repeat for several)"),
    id_column: str = typer.Option(..., "--id", help="document id column"),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="index name [default: the dataset name]"),
    backend_name: Optional[str] = typer.Option(None, "--backend", help="hnsw | lance [default: [vectors] backend]"),
) -> None:
    """Create a vector index over a dataset and build its first version."""
    from lakehouse.cli import print_mapping

    with _backend(ctx) as backend:
        if _is_local(backend):
            result = _with_progress(f"embedding {dataset}", lambda p: backend.vectors.create(
                dataset, text, id_column, name=name, backend=backend_name, progress=p))
        else:
            job = backend.vectors_create({"dataset": dataset, "text_columns": text, "id_column": id_column,
                                          "name": name, "backend": backend_name})["job"]
            result = _follow_job(backend, job, f"embedding {dataset}")
    print_mapping(result, f"vector index {result['index']}")


@vectors_app.command("refresh")
def refresh(ctx: typer.Context, dataset: str = typer.Argument(..., help="dataset (or index name) to refresh")) -> None:
    """Embed only what changed since the active version, then promote the new version."""
    from lakehouse.cli import print_records

    with _backend(ctx) as backend:
        if _is_local(backend):
            names = backend.vectors.indexes_of(dataset) or [dataset]
            results = [_with_progress(f"refreshing {n}", lambda p, n=n: backend.vectors.refresh(n, progress=p)) for n in names]
        else:
            results = [_follow_job(backend, job, f"refreshing {job['target']}") for job in backend.vectors_refresh(dataset)]
    print_records(results, "refresh", ["index", "status", "version", "embedded", "removed", "rows", "seconds"])


@vectors_app.command("search")
def search(
    ctx: typer.Context,
    index: str = typer.Argument(...),
    query: str = typer.Argument(..., help="free text, e.g. 'reliable forklift driver with OSHA-10'"),
    k: int = typer.Option(10, "--k", "-k", min=1, max=1000),
) -> None:
    """Semantic top-k of one index."""
    from lakehouse.cli import print_records, stderr_console

    with _backend(ctx) as backend:
        result = backend.vectors.search(index, query, k) if _is_local(backend) else backend.vectors_search({"index": index, "query": query, "k": k})
    print_records(result["hits"], f"{index} v{result['version']} ({result['path']})", ["doc_id", "score"])
    stderr_console().print(f"latency: {result['latency_ms']}  shortfall: {result['shortfall']}  unindexed searched: {result['unindexed_searched']}")


@vectors_app.command("list")
def list_indexes(ctx: typer.Context) -> None:
    """Every index with its active version and whether its dataset changed since."""
    from lakehouse.cli import print_records

    with _backend(ctx) as backend:
        rows = backend.vectors.list() if _is_local(backend) else backend.vectors_list()
    print_records(rows, "vector indexes", ["name", "dataset", "backend", "active_version", "rows", "stale", "model_id"])


@vectors_app.command("versions")
def versions(ctx: typer.Context, index: str = typer.Argument(...)) -> None:
    """Versions of an index and its promotion history."""
    from lakehouse.cli import print_records

    with _backend(ctx) as backend:
        info = backend.vectors.versions(index) if _is_local(backend) else backend.vectors_versions(index)
    print_records(info["versions"], f"{index}: active v{info['active']}", ["version", "created_at", "backend", "rows", "location"])
    print_records(info["history"], "promotions", ["at", "from", "to", "actor", "reason"])


@vectors_app.command("promote")
def promote(ctx: typer.Context, index: str = typer.Argument(...), version: int = typer.Argument(..., min=1)) -> None:
    """Make VERSION the active version of INDEX."""
    from lakehouse.cli import print_mapping

    with _backend(ctx) as backend:
        result = backend.vectors.promote(index, version) if _is_local(backend) else backend.vectors_promote(index, version)
    print_mapping(result, f"{index} promoted")


@vectors_app.command("rollback")
def rollback(ctx: typer.Context, index: str = typer.Argument(...)) -> None:
    """Re-activate the version that was active before the current one."""
    from lakehouse.cli import print_mapping

    with _backend(ctx) as backend:
        result = backend.vectors.rollback(index) if _is_local(backend) else backend.vectors_rollback(index)
    print_mapping(result, f"{index} rolled back")


def register(app: typer.Typer) -> None:
    app.add_typer(vectors_app, name="vectors")
