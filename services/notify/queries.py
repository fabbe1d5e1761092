"""Notify's read side: the inbox, the supervision view and delivery settings for the API and pages (narrowed
by the caller's identity), and the recipient look-ups the handlers route by."""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from services.common.auth import Identity

from services.notify import domain
from services.notify.adapters.models import Notification, RecipientPreferences, StaffMember

OVERSEERS = ("supervisor", "admin")
ALERT_KINDS = (domain.ALLIANCE_DROPPED, domain.ESCALATION)


def inbox_of(identity: Identity, counselor_id: str | None = None, unacknowledged: bool = False,
             kind: str | None = None):
    """The caller's own notifications, or (supervisors, admins) a counselor's within their clinics.
    Newest first."""
    recipient = counselor_id or identity.staff_id
    if recipient == identity.staff_id:
        filters = _own(identity)
    elif identity.has_role(*OVERSEERS):
        filters = {"recipient_id": recipient, **identity.clinic_filter()}
    else:
        raise domain.NotYours(recipient)
    if unacknowledged:
        filters["acknowledged_at"] = None
    if kind:
        filters["kind"] = kind
    return Notification.objects(**filters).order_by("-created_at", "id")


def _own(identity: Identity) -> dict:
    """The caller's own notifications, in any clinic of the organisation: a notification goes where its
    recipient's work is, and a telehealth counselor's new client (an accepted referral) may be of a clinic
    their token does not name (as for client data: Identity.client_filter)."""
    return {"org_id": identity.org_id, "recipient_id": identity.staff_id}


def unread_count(identity: Identity) -> int:
    return Notification.objects(acknowledged_at=None, **_own(identity)).count()


def visible_notification(identity: Identity, notification_id: str) -> Notification:
    """The caller's own notification, or one in their clinics for supervisors and admins; NoSuchNotification
    otherwise."""
    n = Notification.objects(id=notification_id, org_id=identity.org_id).first()
    overseen = n is not None and identity.has_role(*OVERSEERS) and identity.can_access_clinic(n.org_id, n.clinic_id)
    if n is None or (n.recipient_id != identity.staff_id and not overseen):
        raise domain.NoSuchNotification(notification_id)
    return n


def own_notification(identity: Identity, notification_id: str) -> Notification:
    """For acknowledging: only the recipient may (NotYours for an overseer looking at someone else's)."""
    n = visible_notification(identity, notification_id)
    if n.recipient_id != identity.staff_id:
        raise domain.NotYours(notification_id)
    return n


def own_notifications(identity: Identity, notification_ids: Iterable[str]) -> list[Notification]:
    """For acknowledging several at once: every one must be the caller's own (NoSuchNotification naming the
    first that is not), in the order asked."""
    wanted = list(dict.fromkeys(notification_ids))
    found = {n.id: n for n in Notification.objects(id__in=wanted, **_own(identity))}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise domain.NoSuchNotification(missing[0])
    return [found[i] for i in wanted]


def _known_clinic(identity: Identity, clinic_id: str) -> bool:
    """A clinic of the caller's organisation as far as notify can tell (named in the token, or where its
    staff work): an admin naming another organisation's clinic gets 404, not an empty overview."""
    return clinic_id in identity.clinic_ids or \
        StaffMember.objects(org_id=identity.org_id, clinic_ids=clinic_id).first() is not None


def supervision(identity: Identity, clinic_id: str | None = None) -> dict:
    """Unacknowledged alerts per counselor and the escalations, within the caller's clinics.

    Counted here rather than with $group: FerretDB 1.24 computes only the first accumulator of a $group.
    """
    scope = identity.clinic_filter()
    if clinic_id:
        if not identity.can_access_clinic(identity.org_id, clinic_id) or not _known_clinic(identity, clinic_id):
            raise domain.NoSuchClinic(clinic_id)
        scope = {"org_id": identity.org_id, "clinic_id": clinic_id}
    open_alerts = Notification.objects(kind=domain.ALLIANCE_DROPPED, acknowledged_at=None, **scope).only(
        "recipient_id", "severity", "escalated_at")
    per_counselor: dict[str, Counter] = {}
    for alert in open_alerts:
        counts = per_counselor.setdefault(alert.recipient_id, Counter())
        counts["unacknowledged_alerts"] += 1
        counts["unacknowledged_high"] += alert.severity == domain.HIGH
        counts["escalated"] += alert.escalated_at is not None
    escalations = Notification.objects(kind=domain.ESCALATION, **scope)
    if not identity.is_admin:
        escalations = escalations.filter(recipient_id=identity.staff_id)
    return {
        "counselors": [{"counselor_id": cid, **{k: counts[k] for k in
                                                ("unacknowledged_alerts", "unacknowledged_high", "escalated")}}
                       for cid, counts in sorted(per_counselor.items(), key=lambda kv: -kv[1]["unacknowledged_alerts"])],
        "escalations": list(escalations.order_by("-created_at").limit(200)),
    }


# --- delivery settings ----------------------------------------------------------------------------------

def stored_preferences(identity: Identity) -> RecipientPreferences:
    """The caller's stored settings, or new empty ones (not saved)."""
    key = RecipientPreferences.key(identity.org_id, identity.staff_id)
    return RecipientPreferences.objects(id=key).first() or RecipientPreferences(
        id=key, org_id=identity.org_id, staff_id=identity.staff_id)


def preferences_view(prefs: RecipientPreferences, new_secret: str | None = None) -> dict:
    """The settings as the API and page show them: the webhook secret only when just generated."""
    answer = {"email": prefs.email, "webhook_url": prefs.webhook_url, "channels": prefs.channels or {},
              "quiet_hours": ({"start": prefs.quiet_start, "end": prefs.quiet_end}
                              if prefs.quiet_start and prefs.quiet_end else None),
              "timezone": prefs.timezone or "UTC", "daily_digest": bool(prefs.daily_digest),
              "webhook_secret_set": bool(prefs.webhook_secret)}
    if new_secret:
        answer["webhook_secret"] = new_secret
    return answer


# --- recipients, for routing ----------------------------------------------------------------------------

def preferences_of(org_id: str, staff_id: str) -> domain.Preferences:
    stored = RecipientPreferences.objects(id=RecipientPreferences.key(org_id, staff_id)).first()
    return stored.to_domain() if stored else domain.Preferences()


def clinic_staff(org_id: str, clinic_id: str) -> list[domain.Staff]:
    return [s.to_domain() for s in StaffMember.objects(org_id=org_id, clinic_ids=clinic_id, active=True)]


def supervisor_of(org_id: str, staff_id: str) -> str | None:
    member = StaffMember.objects(id=StaffMember.key(org_id, staff_id)).first()
    return member.supervisor_id if member and member.supervisor_id else None


def known_only_elsewhere(org_id: str, staff_id: str) -> bool:
    """A staff id this organisation does not know but another does."""
    # The own-organisation lookup first: it is by key, while looking elsewhere is a scan of the read model
    # on FerretDB, needed only for an id this organisation does not know.
    if StaffMember.objects(id=StaffMember.key(org_id, staff_id)).only("id").first():
        return False
    return StaffMember.objects(staff_id=staff_id, org_id__ne=org_id).only("id").first() is not None
