"""Every error response has one shape: `{"error": <kind>, "message": <why>, ...details}`.

Lakehouse errors are mapped by `lakehouse.errors` (the one status table); errors that
only the HTTP layer knows about (auth, upload size, malformed requests) are `ApiError`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lakehouse.errors import LakehouseError, error_body, http_status
from lakehouse.gateway.serialize import to_jsonable

log = logging.getLogger("lakehouse.gateway")

INTERNAL_ERROR_BODY = {"error": "InternalError", "message": "internal error; the gateway log has the details"}


class SafeJSONResponse(JSONResponse):
    """JSON response that first makes dates, decimals, bytes and NaN JSON-safe."""

    def render(self, content: Any) -> bytes:
        return json.dumps(to_jsonable(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


class ApiError(Exception):
    """An error of the HTTP layer itself (not of the lakehouse)."""

    def __init__(self, status: int, error: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.headers = status, error, message, dict(headers or {})


def lakehouse_error_response(exc: LakehouseError, headers: Mapping[str, str] | None = None, **extra: Any) -> SafeJSONResponse:
    status = http_status(exc)
    if status == 500:
        # The core's `Internal` errors (I/O, bugs) are unexpected: details go to the log only.
        log.error("internal lakehouse error", exc_info=exc)
        return SafeJSONResponse(INTERNAL_ERROR_BODY, status_code=500, headers=headers)
    return SafeJSONResponse({**error_body(exc), **extra}, status_code=status, headers=headers)


async def handle_lakehouse_error(_: Request, exc: LakehouseError) -> SafeJSONResponse:
    return lakehouse_error_response(exc)


async def handle_api_error(_: Request, exc: ApiError) -> SafeJSONResponse:
    return SafeJSONResponse({"error": exc.error, "message": exc.message}, status_code=exc.status, headers=exc.headers)


async def handle_validation_error(_: Request, exc: RequestValidationError) -> SafeJSONResponse:
    problems = jsonable_encoder(exc.errors())
    summary = "; ".join(f"{'.'.join(map(str, p.get('loc', [])))}: {p.get('msg')}" for p in problems)
    return SafeJSONResponse({"error": "InvalidRequest", "message": summary, "problems": problems}, status_code=422)


EXCEPTION_HANDLERS = {
    LakehouseError: handle_lakehouse_error,
    ApiError: handle_api_error,
    RequestValidationError: handle_validation_error,
}
