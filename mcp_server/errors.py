"""One error shape, like the gateway's: `{"error": <kind>, "message": <why>, ...details}`."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lakehouse.client import GatewayError
from lakehouse.errors import LakehouseError, error_body, http_status
from mcp_server.auth import ApiError

log = logging.getLogger("mcp_server")


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, default=str, separators=(",", ":")).encode("utf-8")


def status_of(exc: BaseException) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, GatewayError):
        return 502
    if isinstance(exc, LakehouseError):
        return http_status(exc)
    return 500


async def handle_api_error(_: Request, exc: ApiError) -> JSON:
    return JSON({"error": exc.error, "message": exc.message, **exc.details}, status_code=exc.status, headers=exc.headers)


async def handle_lakehouse_error(_: Request, exc: LakehouseError) -> JSON:
    """An error the gateway answered with (rebuilt by the client): passed on as is."""
    status = http_status(exc)
    if status == 500:
        log.error("gateway internal error", exc_info=exc)
        return JSON({"error": "InternalError", "message": "the gateway failed; its log has the details"}, status_code=502)
    return JSON(error_body(exc), status_code=status)


async def handle_gateway_error(_: Request, exc: GatewayError) -> JSON:
    return JSON({"error": "GatewayUnavailable", "message": str(exc)}, status_code=502)


async def handle_validation_error(_: Request, exc: RequestValidationError) -> JSON:
    problems = jsonable_encoder(exc.errors())
    summary = "; ".join(f"{'.'.join(map(str, p.get('loc', [])))}: {p.get('msg')}" for p in problems)
    return JSON({"error": "InvalidRequest", "message": summary, "problems": problems}, status_code=422)


EXCEPTION_HANDLERS = {
    ApiError: handle_api_error,
    LakehouseError: handle_lakehouse_error,
    GatewayError: handle_gateway_error,
    RequestValidationError: handle_validation_error,
}
