from datetime import datetime, timedelta, timezone

import jwt
import pytest

from services.common.auth import AuthError, Identity, issue_token, verify_token
from services.common.config import Settings

SETTINGS = Settings.load("tests", environ={})
ALICE = Identity(staff_id="s1", org_id="org-1", clinic_ids=("north",), role="counselor")


def test_a_token_round_trips_to_the_same_identity_and_session():
    signed_in = ALICE.signed_in(datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1))
    back = verify_token(SETTINGS, issue_token(SETTINGS, signed_in))
    assert back == signed_in and back.session_id and back.token_version == 0
    # A token issued without a session (an API client's first) starts one of its own.
    assert verify_token(SETTINGS, issue_token(SETTINGS, ALICE)).session_id


def test_a_session_ends_at_its_absolute_lifetime_however_active():
    signed_in = ALICE.signed_in(datetime.now(timezone.utc) - timedelta(hours=SETTINGS.session_max_hours, minutes=1))
    # Re-issued a minute ago (as on activity): still refused, the sign-in was too long ago.
    refreshed = issue_token(SETTINGS, signed_in, now=datetime.now(timezone.utc) - timedelta(minutes=1))
    with pytest.raises(AuthError, match="SessionEnded|ExpiredSignature"):
        verify_token(SETTINGS, refreshed)
    # And a token never outlives the session: issued close to its end, it expires with it.
    near_end = ALICE.signed_in(datetime.now(timezone.utc) - timedelta(hours=SETTINGS.session_max_hours) +
                               timedelta(minutes=5))
    claims = jwt.decode(issue_token(SETTINGS, near_end), options={"verify_signature": False})
    assert claims["exp"] <= near_end.signed_in_at.timestamp() + SETTINGS.session_max_hours * 3600


def test_an_expired_token_is_rejected():
    old = datetime.now(timezone.utc) - timedelta(minutes=SETTINGS.session_idle_minutes + 1)
    with pytest.raises(AuthError, match="ExpiredSignatureError"):
        verify_token(SETTINGS, issue_token(SETTINGS, ALICE, now=old))


def test_a_tampered_token_is_rejected():
    header, payload, signature = issue_token(SETTINGS, ALICE).split(".")
    forged = jwt.encode({**jwt.decode(issue_token(SETTINGS, ALICE), options={"verify_signature": False}),
                         "role": "admin"}, "another-secret-of-sufficient-length-000", algorithm="HS256")
    with pytest.raises(AuthError):
        verify_token(SETTINGS, forged)
    with pytest.raises(AuthError):
        verify_token(SETTINGS, f"{header}.{payload}x.{signature}")


def test_an_unsigned_alg_none_token_is_rejected():
    claims = jwt.decode(issue_token(SETTINGS, ALICE), options={"verify_signature": False})
    unsigned = jwt.encode({**claims, "role": "admin"}, key=None, algorithm="none")
    with pytest.raises(AuthError):
        verify_token(SETTINGS, unsigned)


def test_an_unknown_role_is_rejected():
    forged = issue_token(SETTINGS, Identity("s1", "org-1", ("north",), "superuser"))
    with pytest.raises(AuthError, match="InvalidClaims"):
        verify_token(SETTINGS, forged)


def test_scoping_admin_sees_the_whole_organisation_others_their_clinics():
    admin = Identity("a", "org-1", (), "admin")
    assert admin.can_access_clinic("org-1", "south")
    assert not admin.can_access_clinic("org-2", "south")
    assert ALICE.can_access_clinic("org-1", "north")
    assert not ALICE.can_access_clinic("org-1", "south")
    assert ALICE.clinic_filter() == {"org_id": "org-1", "clinic_id__in": ["north"]}


def test_outside_development_the_default_secret_is_refused():
    with pytest.raises(ValueError, match="RAPPORT_JWT_SECRET"):
        Settings.load("intake", environ={"RAPPORT_ENVIRONMENT": "production"})
    assert Settings.load("intake", environ={"RAPPORT_ENVIRONMENT": "production",
                                            "RAPPORT_JWT_SECRET": "x" * 40}).jwt_secret == "x" * 40
