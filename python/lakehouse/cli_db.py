"""`lakehouse ingest-db`: stream a PostgreSQL / MySQL table or query into a dataset.

Registered on the main app by `register(app)` (one line in `cli.py`). Like every
command it works on the data directory directly, or through the running gateway
(`POST /ingest/db`) when that owns it.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import typer


def ingest_db(
    ctx: typer.Context,
    dsn: str = typer.Argument(..., help="postgresql://user[:password]@host:port/db or mysql://user[:password]@host:port/db"),
    table: Optional[str] = typer.Option(None, "--table", "-t", help="table to read (schema.table allowed)"),
    query: Optional[str] = typer.Option(None, "--query", "-q", help="SELECT to read instead of a table (needs --name)"),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="dataset name (default: the table name)"),
    watermark: Optional[str] = typer.Option(None, "--watermark", "-w", help="incremental: only rows with COL > the last synced value"),
    batch_rows: Optional[int] = typer.Option(None, "--batch-rows", min=1, help="rows per Arrow batch [default: 50000]"),
    mode: Optional[Literal["append", "replace"]] = typer.Option(None, "--mode", help="default: append with --watermark, else replace"),
) -> None:
    """Stream a database table or query into a dataset (one commit per sync)."""
    from lakehouse.cli import config_of, open_backend, print_mapping

    if (table is None) == (query is None):
        raise typer.BadParameter("give exactly one of --table or --query")
    request = {"dsn": dsn, "table": table, "query": query, "name": name, "watermark": watermark, "batch_rows": batch_rows, "mode": mode}
    with open_backend(config_of(ctx)) as backend:
        result = run_sync(backend, request)
    print_mapping(result, f"ingest-db {result['dataset']}")


def run_sync(backend: Any, request: dict[str, Any]) -> dict[str, Any]:
    from lakehouse.ingest.db_sync import sync_db
    from lakehouse.lakehouse import Lakehouse

    if isinstance(backend, Lakehouse):
        return sync_db(backend, **request)
    # The gateway owns the data directory: let it run the sync.
    return backend.ingest_db(request)


def register(app: typer.Typer) -> None:
    app.command("ingest-db")(ingest_db)
