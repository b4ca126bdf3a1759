"""Stream a PostgreSQL or MySQL/MariaDB table (or query) into Arrow record batches.

PostgreSQL goes through the ADBC libpq driver: it reads `COPY ... TO STDOUT (FORMAT
binary)` straight into Arrow in C, which measured fastest here, and streams in
bounded chunks. MySQL/MariaDB goes through PyMySQL's unbuffered `SSCursor` (the
server-side cursor of the MySQL protocol); connectorx was faster but panics on
DECIMAL(50,10), so it is not used. Both return a `pyarrow.RecordBatchReader` whose
schema is known before the first row arrives.

Passwords never leave this module: every error is re-raised as `SourceUnavailable`
with the password scrubbed (`redact_dsn`, `redact_text`). A password can also come
from outside the DSN (`dsn_with_password`: `--password-env`, a schedule's
`password_env`), so that it appears neither in `ps` nor in anything stored.

Incremental reads are `watermark >= since`, not `>`: a row that arrives after a sync
with the same watermark value as the last row of that sync is not missed. The rows
already synced at `since` are recognised by a digest of their values (`row_digest`;
a multiset, so identical rows count) and skipped (`DbSource.seen_at_since`); the
stream reports the digests of the rows at its own highest watermark
(`DbStream.boundary`) for the next sync.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidInput, LakehouseError, SourceUnavailable

DEFAULT_BATCH_ROWS = 50_000
REDACTED = "***"
PG_SCHEMES = ("postgresql", "postgres")
MYSQL_SCHEMES = ("mysql", "mariadb")
#: query parameters that carry a secret in libpq / MySQL connection strings
SECRET_PARAMS = {"password", "passwd", "pwd", "sslpassword"}
#: environment variables a stored job or a gateway request may read a password from.
#: Schedules and `POST /ingest/db` run in the agent's / gateway's environment, so a
#: writer must not be able to send an arbitrary variable of it (an AWS key, the
#: gateway's own secrets) to a database host of their choosing as a "password".
#: The CLI reads `--password-env` itself, from the user's own environment: any name.
SERVER_PASSWORD_ENV = re.compile(r"^(LAKEHOUSE_[A-Z0-9_]+|PGPASSWORD|MYSQL_PWD)$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---------------------------------------------------------------------- redaction
def redact_dsn(dsn: str) -> str:
    """`dsn` with its password (userinfo or `?password=`) replaced by `***`."""
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{user}@{host}"
        params = [(k, REDACTED if k.lower() in SECRET_PARAMS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(params, safe="*"), parts.fragment))
    except ValueError:
        # Unparseable: keep only the scheme, which can carry no secret.
        return dsn.split(":", 1)[0] + "://" + REDACTED


def dsn_secrets(dsn: str) -> list[str]:
    """Every spelling of the password in `dsn` (raw and percent-decoded)."""
    found: list[str] = []
    netloc = dsn.split("://", 1)[-1].split("/", 1)[0]
    if "@" in netloc:
        userinfo = netloc.rsplit("@", 1)[0]
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    for match in re.finditer(r"(?i)(?:password|passwd|pwd|sslpassword)=([^&#]*)", dsn):
        found.append(match.group(1))
    spellings = {s for raw in found for s in (raw, unquote(raw), quote(unquote(raw), safe=""))}
    # Longest first, so a secret containing another is scrubbed whole.
    return sorted((s for s in spellings if s), key=len, reverse=True)


def redact_text(text: str, dsn: str) -> str:
    """`text` (an error message, a log line) with the DSN's password scrubbed."""
    for secret in dsn_secrets(dsn):
        text = text.replace(secret, REDACTED)
    return text


def source_error(exc: BaseException, dsn: str) -> SourceUnavailable:
    return SourceUnavailable(redact_text(f"{type(exc).__name__}: {exc}", dsn))


# ---------------------------------------------------------------------- passwords kept out of the DSN
def check_password_env_name(name: str, *, server_side: bool = True) -> str:
    """`name` if it may be read as a password variable; `server_side`: read by the
    gateway or the agent (see `SERVER_PASSWORD_ENV`)."""
    if not isinstance(name, str) or not ENV_NAME.match(name):
        raise InvalidInput(f"password_env {name!r} is not an environment variable name")
    if server_side and not SERVER_PASSWORD_ENV.match(name):
        raise InvalidInput(
            f"password_env {name!r}: the gateway and the agent read passwords only from variables named LAKEHOUSE_* "
            "(or PGPASSWORD / MYSQL_PWD), so a stored job cannot read their other secrets; "
            f"e.g. set LAKEHOUSE_DB_PASSWORD in the agent's environment"
        )
    return name


def password_from_env(name: str, *, server_side: bool = True) -> str:
    check_password_env_name(name, server_side=server_side)
    value = os.environ.get(name)
    if value is None:
        raise InvalidInput(f"environment variable {name} is not set (it should hold the database password)")
    return value


def dsn_with_password(dsn: str, password: str | None = None, password_env: str | None = None) -> str:
    """`dsn` with a password given apart from it (`password`, or the environment variable
    `password_env`, read now) put in; `dsn` unchanged when neither is given. The
    result is for connecting only: show it through `redact_dsn`, scrub with `redact_text`."""
    if password is not None and password_env is not None:
        raise InvalidInput("give the password once: password or password_env, not both")
    if password_env is not None:
        password = password_from_env(password_env)
    if password is None:
        return dsn
    if dsn_secrets(dsn):
        raise InvalidInput(f"the DSN {redact_dsn(dsn)!r} already holds a password; give it in one place")
    parts = urlsplit(dsn)
    encoded = quote(password, safe="")
    if parts.username is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        netloc = f"{parts.netloc.rsplit('@', 1)[0]}:{encoded}@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    query = f"{parts.query}&password={encoded}" if parts.query else f"password={encoded}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


# ---------------------------------------------------------------------- rows at the watermark
def row_digest(row: dict[str, Any]) -> str:
    """A short digest of one row's values: recognises a row already synced."""
    text = json.dumps(row, default=_digest_default, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


def _digest_default(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return f"{type(value).__name__}:{value}"


def row_digests(batch: pa.RecordBatch) -> list[str]:
    return [row_digest(row) for row in batch.to_pylist()]


def equal_mask(column: pa.Array, value: Any) -> pa.Array:
    """Boolean mask (no nulls) of `column == value`, `value` a Python value read from it."""
    try:
        mask = pc.equal(column, pa.scalar(value, type=column.type))
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        mask = pa.array([v == value for v in column.to_pylist()], pa.bool_())
    return pc.fill_null(mask, False)


# ---------------------------------------------------------------------- the source
@dataclass
class DbSource:
    """What to read: a table or a query, optionally only rows with `watermark` >= `since`
    minus those already synced (`seen_at_since`: digest -> count of the rows at `since`
    the last sync read). `strict` reads `watermark > since` instead: for a sync state
    written before the digests were kept, which cannot tell which rows at `since` it has."""

    dsn: str
    table: str | None = None
    query: str | None = None
    watermark: str | None = None
    since: Any = None
    batch_rows: int = DEFAULT_BATCH_ROWS
    seen_at_since: dict[str, int] = field(default_factory=dict)
    strict: bool = False

    def __post_init__(self) -> None:
        if (self.table is None) == (self.query is None):
            raise InvalidInput("give exactly one of table or query")
        if self.batch_rows < 1:
            raise InvalidInput("batch_rows must be at least 1")
        if self.dialect not in ("postgres", "mysql"):
            raise InvalidInput(f"unsupported DSN scheme in {redact_dsn(self.dsn)!r}: use postgresql:// or mysql://")

    @property
    def dialect(self) -> str:
        scheme = self.dsn.split("://", 1)[0].lower()
        return "postgres" if scheme in PG_SCHEMES else "mysql" if scheme in MYSQL_SCHEMES else scheme

    @property
    def label(self) -> str:
        """The table name or the query text: part of the sync-state key."""
        return self.table or self.query or ""

    def select(self, quote_ident: Callable[[str], str], literal: Callable[[Any], str], columns: str = "*") -> str:
        """SELECT `columns` from the source, filtered by the watermark when there is one."""
        base = f"SELECT * FROM {'.'.join(quote_ident(p) for p in self.table.split('.'))}" if self.table else self.query.rstrip().rstrip(";")
        sql = f"SELECT {columns} FROM ({base}) AS lh_src"
        if self.watermark and self.since is not None:
            sql += f" WHERE {quote_ident(self.watermark)} {'>' if self.strict else '>='} {literal(self.since)}"
        return sql


@dataclass
class DbStream:
    """A running read: `reader` yields the batches; `max_watermark` is the largest
    watermark value read so far (the next sync starts at it) and `boundary` the digests
    of the rows read with exactly that value (the next sync skips them). Rows skipped
    as already synced are counted in `skipped`, not in `rows`."""

    source: DbSource
    reader: pa.RecordBatchReader | None = None
    rows: int = 0
    max_watermark: Any = None
    boundary: Counter = field(default_factory=Counter)
    skipped: int = 0
    #: the source's failure, if it failed (the facade may wrap it in an error of its own)
    error: SourceUnavailable | None = None
    _close: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        while self._close:
            try:
                self._close.pop()()
            except Exception:  # closing a dropped connection may fail; nothing to keep
                pass


def open_db_stream(source: DbSource) -> DbStream:
    """Connect, describe the result and return a stream of batches of at most
    `source.batch_rows` rows. Errors come out as `SourceUnavailable`, redacted."""
    opener = _open_postgres if source.dialect == "postgres" else _open_mysql
    try:
        schema, batches, closers = opener(source)
    except (LakehouseError, ImportError):
        raise
    except Exception as exc:
        raise source_error(exc, source.dsn) from None
    stream = DbStream(source, _close=closers)
    stream.reader = pa.RecordBatchReader.from_batches(schema, _tracked(stream, schema, batches))
    if source.watermark and source.watermark not in schema.names:
        stream.close()
        raise InvalidInput(f"watermark column {source.watermark!r} is not in the result (columns: {', '.join(schema.names)})")
    return stream


def _tracked(stream: DbStream, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Pass batches through, re-sliced to `batch_rows`, counting rows and tracking the
    watermark; driver errors become redacted `SourceUnavailable` (the message may be
    copied into a core error, a log or a journal, so it is scrubbed here, at the source)."""
    source = stream.source
    unseen = Counter(source.seen_at_since) if source.watermark and source.since is not None else Counter()
    try:
        for batch in batches:
            for offset in range(0, batch.num_rows, source.batch_rows):
                piece = batch.slice(offset, source.batch_rows)
                if source.watermark:
                    if unseen:
                        piece = _drop_already_synced(stream, piece, unseen)
                        if not piece.num_rows:
                            continue
                    _track_boundary(stream, piece)
                stream.rows += piece.num_rows
                yield piece
    except Exception as exc:
        stream.error = exc if isinstance(exc, SourceUnavailable) else source_error(exc, source.dsn)
        raise stream.error from None
    finally:
        stream.close()


def _drop_already_synced(stream: DbStream, piece: pa.RecordBatch, unseen: Counter) -> pa.RecordBatch:
    """`piece` without the rows at `since` that the last sync already read (each digest
    skips as many rows as the last sync saw with it)."""
    source = stream.source
    at_since = equal_mask(piece.column(source.watermark), source.since)
    if not pc.any(at_since).as_py():
        return piece
    positions = pc.indices_nonzero(at_since).to_pylist()
    keep = [True] * piece.num_rows
    for position, digest in zip(positions, row_digests(piece.take(positions))):
        if unseen[digest] > 0:
            unseen[digest] -= 1
            keep[position] = False
    stream.skipped += keep.count(False)
    return piece.filter(pa.array(keep, pa.bool_()))


def _track_boundary(stream: DbStream, piece: pa.RecordBatch) -> None:
    column = piece.column(stream.source.watermark)
    highest = pc.max(column).as_py()
    if highest is None:
        return
    if stream.max_watermark is None or highest > stream.max_watermark:
        stream.max_watermark, stream.boundary = highest, Counter()
    if highest == stream.max_watermark:
        stream.boundary.update(row_digests(piece.filter(equal_mask(column, highest))))


# ---------------------------------------------------------------------- PostgreSQL
#: libpq types that ADBC does not deliver as plain Arrow values; the server casts them to text.
PG_AS_TEXT = {"uuid", "time", "timetz", "interval", "money"}
#: how many bytes of COPY data ADBC gathers into one Arrow batch (bounds memory)
PG_BATCH_BYTES = 16 << 20


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg_literal(value: Any) -> str:
    # E'' strings mean the same whatever standard_conforming_strings is set to.
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::{'timestamptz' if value.tzinfo else 'timestamp'}"
    if isinstance(value, date):
        return f"'{value.isoformat()}'::date"
    return "E'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def _open_postgres(source: DbSource):
    import adbc_driver_postgresql.dbapi as adbc_pg

    conn = adbc_pg.connect(source.dsn)
    cursor = conn.cursor()
    closers = [conn.close, cursor.close]  # popped last-first: cursor, then connection
    try:
        described = cursor.adbc_execute_schema(source.select(_pg_ident, _pg_literal))
        columns = ", ".join(_pg_projection(f) for f in described)
        cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(PG_BATCH_BYTES)})
        cursor.execute(source.select(_pg_ident, _pg_literal, columns))
        reader = cursor.fetch_record_batch()
    except BaseException:
        for close in reversed(closers):
            try:
                close()
            except Exception:
                pass
        raise
    schema = pa.schema([pa.field(f.name, _pg_target_type(f), nullable=True) for f in reader.schema])
    return schema, (_conform(b, schema) for b in reader), closers


def _pg_typname(f: pa.Field) -> str:
    return (f.metadata or {}).get(b"POSTGRESQL:type", b"").decode()


def _pg_needs_text(f: pa.Field) -> bool:
    typ = f.type
    if isinstance(typ, pa.BaseExtensionType):
        return typ.extension_name not in ("arrow.json",) and not _is_pg_numeric(f)
    return _pg_typname(f) in PG_AS_TEXT or pa.types.is_interval(typ) or pa.types.is_time(typ)


def _pg_projection(f: pa.Field) -> str:
    if pa.types.is_list(f.type) and (_pg_needs_text(f.type.value_field) or isinstance(f.type.value_type, pa.BaseExtensionType)):
        return f"{_pg_ident(f.name)}::text[] AS {_pg_ident(f.name)}"
    if _pg_needs_text(f):
        return f"{_pg_ident(f.name)}::text AS {_pg_ident(f.name)}"
    return _pg_ident(f.name)


def _is_pg_numeric(f: pa.Field) -> bool:
    return _pg_typname(f) == "numeric"


def _pg_target_type(f: pa.Field) -> pa.DataType:
    """Our Arrow type for a column as ADBC delivers it (after the text casts)."""
    if _is_pg_numeric(f):
        typmod = int((f.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
        return numeric_type(*_pg_numeric_precision(typmod))
    if isinstance(f.type, pa.BaseExtensionType):
        return f.type.storage_type  # arrow.json: the JSON text
    return f.type


def _pg_numeric_precision(typmod: int) -> tuple[int | None, int]:
    if typmod < 4:
        return None, 0  # unconstrained numeric: any precision
    return ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF


def numeric_type(precision: int | None, scale: int) -> pa.DataType:
    """decimal128 when it holds every value exactly, else the decimal text."""
    return pa.decimal128(precision, scale) if precision is not None and 0 < precision <= 38 else pa.string()


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for column, target in zip(batch.columns, schema):
        if isinstance(column.type, pa.BaseExtensionType):
            column = column.storage
        arrays.append(column if column.type == target.type else column.cast(target.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# ---------------------------------------------------------------------- MySQL / MariaDB
def _mysql_connect_args(dsn: str) -> dict[str, Any]:
    parts = urlsplit(dsn)
    params = dict(parse_qsl(parts.query))
    password = unquote(parts.password) if parts.password is not None else params.get("password", "")
    return {
        "host": parts.hostname or "127.0.0.1", "port": parts.port or 3306, "user": unquote(parts.username or "root"),
        "password": password, "database": unquote(parts.path.lstrip("/")) or None, "charset": params.get("charset", "utf8mb4"),
    }


def _open_mysql(source: DbSource):
    import pymysql
    import pymysql.converters
    import pymysql.cursors

    # Encoders only, no decoders: values arrive as the server's text and Arrow casts
    # whole columns in C, far faster than PyMySQL's per-value Python converters.
    conn = pymysql.connect(
        **_mysql_connect_args(source.dsn), conv=dict(pymysql.converters.encoders), cursorclass=pymysql.cursors.SSCursor,
        init_command="SET time_zone = '+00:00'",  # TIMESTAMP values arrive in UTC
    )
    cursor = conn.cursor()
    closers = [lambda: _mysql_abandon(conn, cursor)]
    try:
        cursor.execute(source.select(_mysql_ident, lambda v: _mysql_literal(conn, v)))
        fields = cursor._result.fields  # PyMySQL keeps unsigned flags and charsets only here
    except BaseException:
        conn.close()
        raise
    converters = [_mysql_column(f) for f in fields]
    schema = pa.schema([pa.field(f.name, typ) for f, (typ, _) in zip(fields, converters)])
    return schema, _mysql_batches(cursor, converters, schema, source.batch_rows), closers


def _mysql_abandon(conn: Any, cursor: Any) -> None:
    """Close without draining: an unbuffered result left half-read would otherwise be
    read to its end (maybe millions of rows), or fail noisily on a dropped connection."""
    result = getattr(cursor, "_result", None)
    if result is not None:
        result.unbuffered_active = False
    conn.close()


def _mysql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _mysql_literal(conn: Any, value: Any) -> str:
    if isinstance(value, datetime) and value.tzinfo:
        value = value.replace(tzinfo=None)  # the session time zone is UTC
    return conn.escape(value)


def _mysql_batches(cursor: Any, converters: list, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    while rows := cursor.fetchmany(batch_rows):
        columns = zip(*rows)
        arrays = [convert(list(values)) for (_, convert), values in zip(converters, columns)]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _mysql_column(f: Any) -> tuple[pa.DataType, Callable[[list], pa.Array]]:
    """(Arrow type, converter of a column of raw values) for one result field."""
    from pymysql.constants import FIELD_TYPE as T
    from pymysql.constants import FLAG

    unsigned = bool(f.flags & FLAG.UNSIGNED)
    signed_ints = {T.TINY: pa.int8(), T.SHORT: pa.int16(), T.INT24: pa.int32(), T.LONG: pa.int32(), T.LONGLONG: pa.int64(), T.YEAR: pa.int16()}
    unsigned_ints = {T.TINY: pa.uint8(), T.SHORT: pa.uint16(), T.INT24: pa.uint32(), T.LONG: pa.uint32(), T.LONGLONG: pa.uint64()}
    code = f.type_code
    if code == T.TINY and f.length == 1:
        target = pa.bool_()  # BOOLEAN is TINYINT(1)
    elif code in signed_ints:
        target = unsigned_ints[code] if unsigned and code in unsigned_ints else signed_ints[code]
    elif code in (T.FLOAT, T.DOUBLE):
        target = pa.float32() if code == T.FLOAT else pa.float64()
    elif code in (T.DECIMAL, T.NEWDECIMAL):
        precision = f.length - (1 if f.scale else 0) - (0 if unsigned else 1)
        target = numeric_type(precision, f.scale)
    elif code in (T.DATE, T.NEWDATE):
        target = pa.date32()
    elif code == T.DATETIME:
        target = pa.timestamp("us")
    elif code == T.TIMESTAMP:
        target = pa.timestamp("us", tz="UTC")
    elif code == T.BIT:
        return pa.int64(), lambda values: pa.array([None if v is None else int.from_bytes(v, "big") for v in values], pa.int64())
    elif code in (T.TINY_BLOB, T.MEDIUM_BLOB, T.LONG_BLOB, T.BLOB, T.VAR_STRING, T.STRING, T.VARCHAR, T.GEOMETRY) and f.charsetnr == 63:
        return pa.binary(), lambda values: pa.array(values, pa.binary())
    else:
        target = pa.string()  # text, JSON, ENUM, SET, TIME, UUID, ...
    return target, lambda values: _cast_text(pa.array(values, pa.string()), target)


def _cast_text(array: pa.Array, target: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(target) and target.tz:
        # Arrow refuses zone-less text for a zoned type; the text is UTC (session time zone).
        return array.cast(pa.timestamp("us")).cast(target)
    return array if target == pa.string() else array.cast(target)
