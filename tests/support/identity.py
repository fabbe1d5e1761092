"""Staff identities for tests: every process of a test run shares the development JWT secret."""
from __future__ import annotations

import re

from services.common.auth import Identity, issue_token
from services.common.config import Settings

DEVELOPMENT = Settings.load("tests")


def bearer(identity: Identity, settings: Settings = DEVELOPMENT) -> dict[str, str]:
    """The Authorization header a signed-in staff member's API calls carry."""
    return {"Authorization": f"Bearer {issue_token(settings, identity)}"}


def form_token(html: str) -> dict[str, str]:
    """The session's form token, as a signed-in page carries it in every form: what a browser sends back."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form token"
    return {"csrf_token": found.group(1)}
