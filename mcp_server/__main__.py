"""`python -m mcp_server`: serve the recruiter API (see mcp_server/app.py for the environment)."""

from mcp_server.app import main

main()
