"""Staff identities for tests: every process of a test run shares the development JWT secret."""
from __future__ import annotations

from services.common.auth import Identity, issue_token
from services.common.config import Settings

DEVELOPMENT = Settings.load("tests")


def bearer(identity: Identity, settings: Settings = DEVELOPMENT) -> dict[str, str]:
    """The Authorization header a signed-in staff member's API calls carry."""
    return {"Authorization": f"Bearer {issue_token(settings, identity)}"}
