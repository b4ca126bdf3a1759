"""The `lakehouse` command line.

Each command opens the data directory through the `Lakehouse` facade - or, when the
running gateway owns it (DESIGN decision 6: the open raises `DataDirLocked`), talks to
the gateway over HTTP through `GatewayClient`, which has the same method names. The
commands only translate arguments and print results; the facade does the work.
Expected failures (lakehouse errors, an unreachable gateway) are printed in red with
their reason and exit 1, without a traceback.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from lakehouse.config import Config, config_file_path, render_default_toml
from lakehouse.gateway.serialize import limit_rows, table_to_json, table_to_records, to_jsonable

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.client import GatewayClient
    from lakehouse.lakehouse import Lakehouse

    Backend = Lakehouse | GatewayClient

IngestMode = Literal["append", "replace"]
#: columns shown by `catalog list` and `journal` when present (the rest via `show` / --format json)
DATASET_COLUMNS = ["name", "row_count", "size_bytes", "version", "fingerprint", "sensitivity", "updated_at", "tombstoned"]
JOURNAL_COLUMNS = ["seq", "at", "actor", "operation", "dataset", "details"]
#: manifest fields meant for machines (the exact Arrow schema as hex), left out of `catalog show`
MACHINE_ONLY_FIELDS = {"schema_ipc"}


# ---------------------------------------------------------------------- error reporting
def expected_error_types() -> tuple[type[BaseException], ...]:
    try:
        from lakehouse.client import GatewayError
        from lakehouse.errors import LakehouseError
    except ImportError:  # native core not built: nothing it raises can be in flight
        return ()
    return (LakehouseError, GatewayError)


def report_error(exc: BaseException) -> None:
    from lakehouse.errors import error_details, error_message

    console = stderr_console()
    console.print(Text.assemble(("error: ", "bold red"), (f"{type(exc).__name__}: ", "red"), (error_message(exc), "red")))
    for key, value in error_details(exc).items():
        console.print(Text(f"  {key}: {_cell(value)}", style="red"))


class ReportErrorsGroup(TyperGroup):
    """Root command group: turns expected errors from any command into a red message
    and exit code 1 (bugs still raise with a traceback)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not isinstance(exc, expected_error_types()):
                raise
            report_error(exc)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=ReportErrorsGroup,
    help="Local-first lakehouse for staffing agencies: ingest files, query with SQL, run the HTTP gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="Datasets: list, show, tombstone, restore, dedupe, history.", no_args_is_help=True)
storage_app = typer.Typer(help="Bucket failures and health.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(storage_app, name="storage")


# ---------------------------------------------------------------------- context
@dataclass
class CliState:
    data_dir: Path


@app.callback()
def main(
    ctx: typer.Context,
    data_dir: Path = typer.Option(Path("./data"), "--data-dir", envvar="LAKEHOUSE_DATA_DIR", help="the data directory"),
) -> None:
    ctx.obj = CliState(data_dir=data_dir)


def config_of(ctx: typer.Context) -> Config:
    data_dir = ctx.find_object(CliState).data_dir
    try:
        return Config.load(data_dir)
    except ValueError as exc:  # a TOML syntax error or an unknown key
        stderr_console().print(Text(f"error: invalid configuration for {data_dir}: {exc}", style="red"))
        raise typer.Exit(1) from None


@contextmanager
def open_backend(config: Config) -> Iterator[Backend]:
    """The facade over `config`'s data directory, or - when the running gateway holds
    its lock - a client of that gateway."""
    from lakehouse.errors import DataDirLocked
    from lakehouse.lakehouse import Lakehouse

    try:
        lakehouse = Lakehouse(config=config)
    except DataDirLocked as locked:
        with gateway_client(config, locked) as client:
            yield client
        return
    with lakehouse:
        yield lakehouse


def gateway_client(config: Config, locked: Exception) -> GatewayClient:
    """A client of the gateway that owns the data directory. If no gateway answers, the
    lock belongs to some other process: re-raise `locked`, saying so."""
    from lakehouse.client import GatewayClient, gateway_serves, running_gateway_url
    from lakehouse.errors import error_message

    url = running_gateway_url(config)
    if not gateway_serves(url, config.data_path):
        raise type(locked)(f"{error_message(locked)}; no gateway for it answers at {url}") from None
    stderr_console().print(f"[dim]{config.data_path} is owned by the running gateway; using {url}[/]")
    return GatewayClient.from_config(config)


# ---------------------------------------------------------------------- output
def stdout_console() -> Console:
    # Created per use (not at import) so COLUMNS and redirected streams are honoured.
    return Console(highlight=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def _cell(value: Any) -> str:
    value = to_jsonable(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def print_rows(columns: list[str], rows: Iterable[Iterable[Any]], title: str) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text(_cell(value)) for value in row))  # Text: values are never read as markup
    stdout_console().print(table)


def print_records(records: list[dict[str, Any]], title: str, preferred: list[str] | None = None) -> None:
    """A table of `records`: the `preferred` columns that are present, else every key."""
    if not records:
        stdout_console().print(f"[dim]{title}: none[/]")
        return
    present = list(dict.fromkeys(key for record in records for key in record))
    columns = [c for c in (preferred or []) if c in present] or present
    print_rows(columns, ([record.get(c) for c in columns] for record in records), title)


def print_mapping(mapping: dict[str, Any], title: str) -> None:
    """Field/value table; fields holding a list of records (columns, lineage) follow as
    tables of their own, which read better than a JSON blob."""
    nested = {k: v for k, v in mapping.items() if _is_records(v)}
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in mapping.items():
        if key not in nested:
            table.add_row(key, Text(_cell(value)))
    stdout_console().print(table)
    for key, records in nested.items():
        print_records(records, f"{title}: {key}")


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(to_jsonable(value), indent=2))


def print_arrow_table(table: pa.Table, output_format: str) -> None:
    if output_format == "json":
        print_json(table_to_records(table))
        return
    data = table_to_json(table)
    if output_format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(data["columns"])
        writer.writerows([_cell(v) for v in row] for row in data["rows"])
    else:
        print_rows(data["columns"], data["rows"], f"{table.num_rows} row(s)")


# ---------------------------------------------------------------------- init
@app.command()
def init(ctx: typer.Context) -> None:
    """Create the data directory, its inbox/ and a commented lakehouse.toml with an API key."""
    config = config_of(ctx)
    config.data_path.mkdir(parents=True, exist_ok=True)
    config.inbox_path.mkdir(parents=True, exist_ok=True)
    toml_path = config_file_path(config.data_path)
    console = stdout_console()
    if toml_path.exists():
        console.print(f"kept the existing configuration {toml_path}")
    else:
        write_private_file(toml_path, render_default_toml(api_key=secrets.token_urlsafe(32)))
        console.print(f"wrote {toml_path} (mode 0600: it holds the gateway's API key)")
    console.print(f"data directory: {config.data_path}\ninbox:          {config.inbox_path}")
    console.print(next_steps(config))


def write_private_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def next_steps(config: Config) -> str:
    prefix = f"lakehouse --data-dir {config.data_path}"
    return "\n".join([
        "\n[bold]Next steps[/]",
        f"  {prefix} ingest workers.csv --name workers",
        f'  {prefix} sql "SELECT * FROM workers LIMIT 5"',
        f"  {prefix} demo-data --workers 10000        # synthetic staffing data",
        f"  {prefix} serve                            # HTTP gateway on {config.gateway.url} (docs at /docs)",
    ])


# ---------------------------------------------------------------------- ingest
@dataclass
class IngestOutcome:
    path: Path
    dataset: str | None
    status: str
    rows_written: int | None = None
    total_rows: int | None = None
    version: int | None = None
    error: str | None = None
    #: where the rejected file was kept with its `.error.json` (None: not quarantined)
    quarantined_as: str | None = None


@app.command()
def ingest(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., exists=True, help="files, or directories whose files are all ingested"),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="dataset name (default: derived from each file name)"),
    mode: IngestMode = typer.Option("append", "--mode", help="append rows, or replace the dataset's content"),
) -> None:
    """Ingest CSV / Parquet files into datasets.

    A file that cannot be ingested is kept in <data-dir>/_quarantine/ with a .error.json
    giving the reason, as for a gateway upload (the original file is left where it is)."""
    files = expand_paths(paths)
    if not files:
        raise typer.BadParameter("no files found in the given directories", param_hint="PATHS")
    with open_backend(config_of(ctx)) as backend:
        outcomes = ingest_with_progress(backend, [(path, name) for path in files], mode)
    print_ingest_outcomes(outcomes)
    if any(o.error for o in outcomes):
        raise typer.Exit(1)


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given, plus the visible files directly inside each directory (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")))
        else:
            files.append(path)
    return files


def ingest_with_progress(backend: Backend, jobs: list[tuple[Path, str | None]], mode: str) -> list[IngestOutcome]:
    """Ingest each (path, dataset name) with a progress bar; one failure does not stop the rest."""
    outcomes = []
    with progress_bars() as progress:
        task = progress.add_task("ingesting", total=len(jobs))
        for path, name in jobs:
            progress.update(task, description=f"ingesting {path.name}")
            outcomes.append(ingest_one(backend, path, name, mode))
            progress.advance(task)
    return outcomes


def ingest_one(backend: Backend, path: Path, name: str | None, mode: str) -> IngestOutcome:
    """Ingest one file. A rejected file is quarantined like a gateway upload: by the
    gateway itself when it owns the data directory (its answer says where), else here."""
    try:
        result = backend.ingest_file(path, name, mode=mode)
    except Exception as exc:
        from lakehouse.errors import error_details, error_message

        if backend_is_local(backend):
            kept = quarantine_rejected_file(backend, path, name, mode, exc)
        else:
            kept = error_details(exc).get("quarantined_as")
        if not isinstance(exc, expected_error_types()):
            raise  # a bug: kept in quarantine, and reported with its traceback
        return IngestOutcome(path, name, "failed", error=f"{type(exc).__name__}: {error_message(exc)}", quarantined_as=kept)
    return IngestOutcome(path, result.dataset, result.status, result.rows_written, result.total_rows, result.version)


def backend_is_local(backend: Backend) -> bool:
    from lakehouse.lakehouse import Lakehouse

    return isinstance(backend, Lakehouse)


def quarantine_rejected_file(lakehouse: Lakehouse, path: Path, name: str | None, mode: str, exc: BaseException) -> str | None:
    """Keep a copy of the rejected `path` in `<data_dir>/_quarantine/` with its reason,
    through the gateway's own `quarantine` (same layout, same `.error.json`): the file
    is staged like an upload (hard link, else copy, into a fresh `_uploads/<id>/`) and
    quarantined from there. The user's file stays where it is. A hard link costs nothing
    for a huge file and keeps the bytes if the original is deleted or replaced; only an
    edit of the original in place would show through. Returns the quarantined path
    relative to the data directory (None if it could not be kept: said on stderr)."""
    import shutil
    import uuid

    from lakehouse.errors import error_body, http_status
    from lakehouse.gateway.uploads import QUARANTINE_DIR, UPLOADS_DIR, ReceivedUpload, quarantine, safe_filename

    workdir = lakehouse.path / UPLOADS_DIR / uuid.uuid4().hex
    try:
        workdir.mkdir(parents=True)
        staged = workdir / safe_filename(path.name)
        try:
            os.link(path, staged)  # no copy of a large file; the bytes stay even if the original goes
        except OSError:
            shutil.copyfile(path, staged)
        fields = {k: v for k, v in {"name": name, "mode": mode}.items() if v}
        upload = ReceivedUpload(workdir, staged, str(path), fields, staged.stat().st_size)
        report = {**error_body(exc), "status": http_status(exc), "dataset": name, "mode": mode,
                  "actor": lakehouse.actor, "via": "cli", "source_path": str(path.absolute())}
        try:
            kept = quarantine(upload, lakehouse.path / QUARANTINE_DIR, report)
        finally:
            upload.discard()  # the directory made above, nothing else
    except Exception as problem:  # noqa: BLE001 - the ingest error is what the user must see
        stderr_console().print(Text(f"note: could not keep {path} in quarantine: {problem}", style="yellow"))
        return None
    return str(kept.relative_to(lakehouse.path))


def progress_bars() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=stderr_console(), transient=True,
    )


def print_ingest_outcomes(outcomes: list[IngestOutcome]) -> None:
    table = Table(title="ingest")
    for column in ("file", "dataset", "status", "rows written", "total rows", "version"):
        table.add_column(column)
    for o in outcomes:
        style = "red" if o.error else ("dim" if o.status == "noop" else "")
        table.add_row(*(Text(_cell(v), style=style) for v in (o.path, o.dataset, o.status, o.rows_written, o.total_rows, o.version)))
    stdout_console().print(table)
    for o in outcomes:
        if o.error:
            stderr_console().print(Text(f"error: {o.path}: {o.error}", style="red"))
            if o.quarantined_as:
                stderr_console().print(Text(f"  kept in quarantine as {o.quarantined_as} "
                                            f"(reason in {o.quarantined_as}.error.json)", style="red"))


# ---------------------------------------------------------------------- sql
@app.command()
def sql(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="a read-only SQL query; every live dataset is a table"),
    output_format: Literal["table", "json", "csv"] = typer.Option("table", "--format", "-f"),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="print at most this many rows"),
) -> None:
    """Run a read-only SQL query."""
    with open_backend(config_of(ctx)) as backend:
        table = backend.sql(query)
        rescue_used = backend.rescue_used
    print_arrow_table(limit_rows(table, limit), output_format)
    if rescue_used:
        stderr_console().print("[yellow]note: part of this answer was read from the rescue bucket[/]")


# ---------------------------------------------------------------------- catalog
@catalog_app.command("list")
def catalog_list(
    ctx: typer.Context,
    include_tombstoned: bool = typer.Option(False, "--all", "-a", help="include tombstoned datasets"),
    as_json: bool = typer.Option(False, "--json", help="print the full manifests as JSON"),
) -> None:
    """List datasets."""
    with open_backend(config_of(ctx)) as backend:
        datasets = backend.datasets(include_tombstoned)
    if as_json:
        print_json(datasets)
    else:
        print_records(datasets, "datasets", DATASET_COLUMNS)


@catalog_app.command("show")
def catalog_show(ctx: typer.Context, name: str) -> None:
    """Show one dataset's manifest."""
    with open_backend(config_of(ctx)) as backend:
        manifest = backend.dataset(name)
    print_mapping({k: v for k, v in manifest.items() if k not in MACHINE_ONLY_FIELDS}, f"dataset {name}")


@catalog_app.command("tombstone")
def catalog_tombstone(ctx: typer.Context, name: str) -> None:
    """Soft-delete a dataset: hidden from SQL, restorable."""
    run_and_print(ctx, lambda backend: backend.tombstone(name), f"tombstoned {name}")


@catalog_app.command("restore")
def catalog_restore(ctx: typer.Context, name: str) -> None:
    """Restore a tombstoned dataset."""
    run_and_print(ctx, lambda backend: backend.restore(name), f"restored {name}")


@catalog_app.command("dedupe")
def catalog_dedupe(ctx: typer.Context) -> None:
    """Collapse duplicate manifests (idempotent)."""
    run_and_print(ctx, lambda backend: backend.dedupe(), "dedupe")


@catalog_app.command("history")
def catalog_history(ctx: typer.Context, name: str) -> None:
    """Table versions of a dataset, newest first."""
    run_and_print(ctx, lambda backend: backend.history(name), f"history of {name}")


@app.command()
def compact(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="dataset (default: all)")) -> None:
    """Merge small files (Delta OPTIMIZE); answers do not change."""
    run_and_print(ctx, lambda backend: backend.compact(name), "compaction")


def run_and_print(ctx: typer.Context, call: Callable[[Backend], Any], title: str) -> None:
    with open_backend(config_of(ctx)) as backend:
        result = call(backend)
    if isinstance(result, list):
        print_records(result, title)
    else:
        print_mapping(result, title)


# ---------------------------------------------------------------------- journal & storage
@app.command()
def journal(
    ctx: typer.Context,
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    actor: Optional[str] = typer.Option(None, "--actor"),
    since: Optional[str] = typer.Option(None, "--since", help="RFC 3339 instant, inclusive"),
    until: Optional[str] = typer.Option(None, "--until", help="RFC 3339 instant, exclusive"),
    operation: Optional[str] = typer.Option(None, "--operation", help="create, insert, replace, tombstone, ..."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1),
) -> None:
    """Mutation events: who changed what, when."""
    with open_backend(config_of(ctx)) as backend:
        events = backend.journal(dataset, actor, since, until, operation, limit)
    print_records(events, "journal", JOURNAL_COLUMNS)


@storage_app.command("errors")
def storage_errors(ctx: typer.Context, limit: Optional[int] = typer.Option(None, "--limit", min=1)) -> None:
    """Journaled bucket failures."""
    run_and_print(ctx, lambda backend: backend.storage_errors(limit), "storage errors")


@storage_app.command("health")
def storage_health(ctx: typer.Context) -> None:
    """Per-bucket reachability."""
    run_and_print(ctx, lambda backend: backend.bucket_health(), "bucket health")


# ---------------------------------------------------------------------- serve
@app.command()
def serve(
    ctx: typer.Context,
    host: Optional[str] = typer.Option(None, "--host", help="bind address (default: gateway.host)"),
    port: Optional[int] = typer.Option(None, "--port", help="port (default: gateway.port)"),
) -> None:
    """Run the HTTP gateway; it owns the data directory while it runs."""
    from lakehouse.gateway import serve as serve_gateway

    serve_gateway(config_of(ctx), host=host, port=port)


# ---------------------------------------------------------------------- demo data
@app.command("demo-data")
def demo_data(
    ctx: typer.Context,
    workers: int = typer.Option(10_000, "--workers", min=1, help="number of worker profiles"),
    seed: int = typer.Option(42, "--seed", help="random seed (same seed, same data)"),
    ingest_files: bool = typer.Option(True, "--ingest/--no-ingest", help="ingest the files into datasets"),
    out: Optional[Path] = typer.Option(None, "--out", help="where the Parquet files are written [default: <data-dir>/_demo_source]"),
) -> None:
    """Generate synthetic staffing data as Parquet, and ingest it (one dataset per table)."""
    from lakehouse.demo_data import write_parquet

    # Inside the data directory by default: the generated sources never litter the working tree.
    out = out or config_of(ctx).data_path / "_demo_source"

    with progress_bars() as progress:
        bars: dict[str, Any] = {}

        def on_progress(table: str, rows_done: int, rows_total: int) -> None:
            if table not in bars:
                bars[table] = progress.add_task(f"generating {table}", total=rows_total)
            progress.update(bars[table], completed=rows_done)

        tables = write_parquet(out, workers, seed, progress=on_progress)
    files = [(Path(path), table) for table, paths in tables.items() for path in paths]
    print_records([{"table": table, "file": str(path)} for path, table in files], f"demo data in {out}")
    if not ingest_files:
        return
    with open_backend(config_of(ctx)) as backend:
        outcomes = ingest_with_progress(backend, files, "append")
    print_ingest_outcomes(outcomes)
    if any(o.error for o in outcomes):
        raise typer.Exit(1)


import lakehouse.cli_db as cli_db; cli_db.register(app)  # noqa: E402,E702  (ingest-db lives in its own module)
import lakehouse.cli_daemon as cli_daemon; cli_daemon.register(app)  # noqa: E402,E702  (watch, schedule)
import lakehouse.cli_vectors as cli_vectors; cli_vectors.register(app)  # noqa: E402,E702  (vectors ...)
import lakehouse.cli_autotune as cli_autotune; cli_autotune.register(app)  # noqa: E402,E702  (autotune ..., profiles ...)

if __name__ == "__main__":
    app()
