"""The recruiter API's error responses: the gateway's shape and status table (`lakehouse.http`).

Errors are `{"error": <kind>, "message": <why>, ...details}`. A lakehouse error here is an
answer of the gateway (rebuilt by the client) and is passed on with its status; the
gateway's own internal error is a 502, and so is a gateway that cannot be reached
(`GatewayUnavailable`). Details of an internal error go to the `mcp_server` log only.
"""

from __future__ import annotations

import logging

from lakehouse.http import ErrorResponses

ERRORS = ErrorResponses(logging.getLogger("mcp_server"), service="recruiter API", behind_gateway=True)
