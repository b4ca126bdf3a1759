"""The gateway's error responses: the shape and status table of `lakehouse.http`.

Every error response is `{"error": <kind>, "message": <why>, ...details}`. Lakehouse
errors are mapped by `lakehouse.errors` (the one status table); errors that only the HTTP
layer knows about (auth, upload size, malformed requests) are `ApiError`. An internal
error is a generic 500 whose details go to the gateway's log only.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from lakehouse.errors import LakehouseError
from lakehouse.http import ApiError, ErrorResponses, SafeJSONResponse

__all__ = ["ERRORS", "ApiError", "SafeJSONResponse", "lakehouse_error_response"]

ERRORS = ErrorResponses(logging.getLogger("lakehouse.gateway"), service="gateway")


def lakehouse_error_response(exc: LakehouseError, headers: Mapping[str, str] | None = None, **extra: Any) -> SafeJSONResponse:
    """For a route that answers an error itself, to add `headers` (the rescue flag of
    `/query/sql`) or `extra` body fields (where a refused upload was kept)."""
    return ERRORS.response(exc, headers, **extra)
