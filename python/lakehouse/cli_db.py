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
    dsn: str = typer.Argument(..., help="postgresql://user@host:port/db or mysql://user@host:port/db (password: see --password-env)"),
    table: Optional[str] = typer.Option(None, "--table", "-t", help="table to read (schema.table allowed)"),
    query: Optional[str] = typer.Option(None, "--query", "-q", help="SELECT to read instead of a table (needs --name)"),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="dataset name (default: the table name)"),
    watermark: Optional[str] = typer.Option(None, "--watermark", "-w", help="incremental: only rows with COL >= the last synced value not synced yet"),
    key: Optional[str] = typer.Option(None, "--key", "-k", help="with --watermark: rows whose KEY is already in the dataset replace it (upsert)"),
    password_env: Optional[str] = typer.Option(
        None, "--password-env", metavar="VAR",
        help="read the database password from environment variable VAR (kept out of the DSN, so out of `ps`)"),
    batch_rows: Optional[int] = typer.Option(None, "--batch-rows", min=1, help="rows per Arrow batch [default: 50000]"),
    mode: Optional[Literal["append", "replace", "upsert"]] = typer.Option(
        None, "--mode", help="default: upsert with --key, append with --watermark, else replace"),
) -> None:
    """Stream a database table or query into a dataset (one commit per sync; an upsert is a delete and an append)."""
    from lakehouse.cli import config_of, open_backend, print_mapping, stderr_console

    if (table is None) == (query is None):
        raise typer.BadParameter("give exactly one of --table or --query")
    password = read_password_env(password_env) if password_env else None
    if password is None and dsn_has_password(dsn):
        stderr_console().print("[yellow]note: a password in the DSN is visible to every user of this machine in `ps`; "
                               "put it in an environment variable and pass --password-env VAR[/]")
    request = {"dsn": dsn, "table": table, "query": query, "name": name, "watermark": watermark, "key": key,
               "batch_rows": batch_rows, "mode": mode, "password": password}
    with open_backend(config_of(ctx)) as backend:
        result = run_sync(backend, request)
    print_mapping(result, f"ingest-db {result['dataset']}")


def read_password_env(var: str) -> str:
    """The password from the CLI user's own environment (any variable name: it is theirs).
    Sent on as `password` - to the facade, or in the body of `POST /ingest/db` - never in
    the DSN, so it is stored nowhere and never on a command line."""
    import os

    from lakehouse.ingest.db import ENV_NAME

    if not ENV_NAME.match(var):
        raise typer.BadParameter(f"{var!r} is not an environment variable name", param_hint="--password-env")
    value = os.environ.get(var)
    if value is None:
        raise typer.BadParameter(f"environment variable {var} is not set", param_hint="--password-env")
    return value


def dsn_has_password(dsn: str) -> bool:
    from lakehouse.ingest.db import dsn_secrets

    return bool(dsn_secrets(dsn))


def run_sync(backend: Any, request: dict[str, Any]) -> dict[str, Any]:
    from lakehouse.ingest.db_sync import sync_db
    from lakehouse.lakehouse import Lakehouse

    if isinstance(backend, Lakehouse):
        return sync_db(backend, **request)
    # The gateway owns the data directory: let it run the sync.
    return backend.ingest_db(request)


def register(app: typer.Typer) -> None:
    app.command("ingest-db")(ingest_db)
