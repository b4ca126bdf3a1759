"""Recruiter-facing service of the Lakehouse: the JSON API the web app calls.

`create_app(gateway_url, api_key, data_dir)` builds it; `python -m mcp_server` serves it
(port 3700). See README.md for the endpoints and the masking policy.
"""

from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):  # imported lazily so `import mcp_server` stays cheap
    from mcp_server.app import create_app as build

    return build(*args, **kwargs)
