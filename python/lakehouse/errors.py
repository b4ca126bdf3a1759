"""Typed exceptions raised by the Rust core and the Python layer.

The classes are created once, in the native module (`lakehouse._core`), from the
Rust `LakehouseError` enum; this module re-exports them under stable names and
holds the one mapping from exception to HTTP status used by the gateway.
"""

from __future__ import annotations

from lakehouse._core import (  # noqa: F401  (re-exported)
    BucketUnavailable,
    DataDirLocked,
    InvalidInput,
    LakehouseError,
    NotFound,
    ReadOnlyViolation,
    SchemaConflict,
    SourceUnavailable,
)



class OutOfScope(LakehouseError):
    """A profile (named scope) was asked for a dataset outside its bindings (HTTP 403)."""


#: exception class -> HTTP status. The gateway uses this and nothing else.
HTTP_STATUS: dict[type[Exception], int] = {
    SchemaConflict: 409,
    NotFound: 404,
    ReadOnlyViolation: 400,
    InvalidInput: 400,
    BucketUnavailable: 503,
    DataDirLocked: 423,
    # The upstream source (a database, a producer) failed: a bad gateway, not our bug.
    SourceUnavailable: 502,
    OutOfScope: 403,
}


def http_status(exc: BaseException) -> int:
    """The HTTP status for an exception (500 for anything unexpected)."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def error_message(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)


def error_details(exc: BaseException) -> dict:
    """Structured details the core attached (e.g. both fingerprints and the column diff
    of a `SchemaConflict`); empty when there are none."""
    if len(exc.args) > 1 and isinstance(exc.args[1], dict):
        return exc.args[1]
    return {}


def error_body(exc: BaseException) -> dict:
    """The JSON body the gateway returns for an error."""
    return {"error": type(exc).__name__, "message": error_message(exc), **error_details(exc)}
