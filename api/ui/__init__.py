"""The web portal under /ui: server-rendered pages for clients, auditors and consultants.

Pages call the same :mod:`vault.services` as the JSON API, with the same caller
(:func:`api.deps.caller_for_token`, fed from the session cookie), so authorization is decided
in one place. See docs/guides/portal.md.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.ui import pages_audit, pages_auth, pages_client, pages_consultant, pages_requests

router = APIRouter(prefix="/ui", include_in_schema=False)
for _module in (pages_auth, pages_client, pages_audit, pages_consultant, pages_requests):
    router.include_router(_module.router)
