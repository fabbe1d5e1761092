"""Notify's rules, free of Flask, Kafka and Mongo: who is told what, when, over which channel.

Everything here works on plain data, so routing, quiet hours, digests, backoff and webhook signatures are
unit-tested without a database. Notifications carry ids, codes and a link, never a client's name: notify
does not even know it (events do not carry names).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Iterable, Mapping, Protocol, Sequence
from zoneinfo import ZoneInfo

from services.common import events

IN_APP, EMAIL, WEBHOOK = "in_app", "email", "webhook"
EXTERNAL_CHANNELS = (EMAIL, WEBHOOK)

ALLIANCE_DROPPED = "alliance_dropped"
REFERRAL_RECOMMENDED = "referral_recommended"
REFERRAL_ACCEPTED = "referral_accepted"
NEW_CLIENT = "new_client"
ESCALATION = "escalation"
KINDS = (ALLIANCE_DROPPED, REFERRAL_RECOMMENDED, REFERRAL_ACCEPTED, NEW_CLIENT, ESCALATION)

HIGH = "high"

# Delivery states of one channel of one notification.
PENDING, SENDING, SENT, FAILED, SKIPPED, UNCERTAIN = "pending", "sending", "sent", "failed", "skipped", "uncertain"


class NoSuchNotification(LookupError):
    """Not a notification the caller may see."""


class NoSuchClinic(LookupError):
    """Not a clinic of the caller's organisation that they may see."""


class NotYours(PermissionError):
    """Someone else's notification or inbox: only its recipient acknowledges, only overseers look."""


@dataclass(frozen=True)
class Staff:
    """The recipient read model's view of one staff member (from counselor.updated / staff.updated)."""

    staff_id: str
    role: str
    clinic_ids: tuple[str, ...]
    supervisor_id: str | None = None
    active: bool = True

    def works_in(self, clinic_id: str) -> bool:
        return self.active and clinic_id in self.clinic_ids


@dataclass(frozen=True)
class AlertScores:
    """What an alliance alert compared, as alliance.dropped states it: the session's total, the client's
    usual level (the mean of their earlier sessions with this counselor; None until there are enough) and
    the session's goal/task/bond item means, and the client's usual level of each (their mean over the same
    earlier sessions; only those known). Numbers only, so the inbox can say how far the alliance fell, and in
    which dimension, without asking scoring."""

    total: float
    usual: float | None = None
    subscales: Mapping[str, float | None] = field(default_factory=dict)
    usual_subscales: Mapping[str, float] = field(default_factory=dict)

    @dataclass(frozen=True)
    class Dimension:
        """One subscale's item mean this session, against the client's usual level of it (None until known)."""

        subscale: str
        score: float
        usual: float | None = None

        @property
        def fall(self) -> float | None:
            """How far it is below the usual level (negative when above it)."""
            return None if self.usual is None else self.usual - self.score

    @classmethod
    def of(cls, payload: events.AllianceDropped) -> "AlertScores":
        """From alliance.dropped; a usual subscale level the event does not state (an older event, no
        baseline yet) is left out rather than made up."""
        return cls(payload.total, payload.baseline_mean,
                   {s: getattr(payload.subscales, s) for s in events.SUBSCALES},
                   {s: v for s in events.SUBSCALES if (v := getattr(payload.usual_subscales, s)) is not None})

    @property
    def fall(self) -> float | None:
        """How far the total is below the usual level (negative when above it)."""
        return None if self.usual is None else self.usual - self.total

    def dimension(self, subscale: str | None) -> "AlertScores.Dimension | None":
        """One dimension's score this session against its usual level; None without a score this session."""
        now = self.subscales.get(subscale) if subscale else None
        if now is None:
            return None
        return AlertScores.Dimension(subscale, now, self.usual_subscales.get(subscale))

    def dimensions(self) -> list["AlertScores.Dimension"]:
        """Goal, task and bond, each that has a score this session, in Bordin's order."""
        return [d for s in events.SUBSCALES if (d := self.dimension(s)) is not None]

    def summary(self) -> str:
        """The line the inbox shows: "total 5.5, usual 7.8" (the usual level only once there is one)."""
        return f"total {_points(self.total)}" + (f", usual {_points(self.usual)}" if self.usual is not None else "")


def _points(value: float) -> str:
    return f"{round(value, 1):g}"


@dataclass(frozen=True)
class Draft:
    """A notification to create for one recipient, before channels and timing are decided."""

    recipient_id: str
    kind: str
    severity: str
    client_id: str
    counselor_id: str | None = None
    # What raised it: the alert's first rule, or a referral's reason.
    rule: str | None = None
    dimension: str | None = None
    session_number: int | None = None
    referral_id: str | None = None
    # For alliance alerts: scoring's alert, its kind (change, level, exit_interview) and every rule it lists.
    alert_id: str | None = None
    alert_kind: str | None = None
    rules: tuple[str, ...] = ()
    scores: AlertScores | None = None


def notification_id(source_event_id: str, recipient_id: str) -> str:
    """One notification per (source event, recipient): a redelivered event finds the one it made."""
    return f"{source_event_id}:{recipient_id}"


# --- routing: one function per event type, from the payload and the clinic's staff ----------------------

def route_alliance_dropped(payload: events.AllianceDropped) -> list[Draft]:
    """One notification per alert: scoring makes one alert per session, whatever number of rules fired."""
    return [Draft(payload.counselor_id, ALLIANCE_DROPPED, payload.severity, payload.client_id,
                  counselor_id=payload.counselor_id, rule=payload.rules[0], dimension=payload.dimension,
                  session_number=payload.session_number, alert_id=payload.alert_id,
                  alert_kind=payload.kind, rules=tuple(payload.rules),
                  scores=AlertScores.of(payload))]


def route_referral_recommended(payload: events.ReferralRecommended, clinic_id: str, staff: Iterable[Staff]) -> list[Draft]:
    supervisors = sorted(s.staff_id for s in staff if s.role == "supervisor" and s.works_in(clinic_id))
    return [Draft(sid, REFERRAL_RECOMMENDED, "medium", payload.client_id,
                  counselor_id=payload.current_counselor_id, rule=payload.reason,
                  referral_id=payload.referral_id) for sid in supervisors]


def route_intake_submitted(payload: events.IntakeSubmitted) -> list[Draft]:
    counselor = payload.assigned_counselor_id
    return [Draft(counselor, NEW_CLIENT, "low", payload.client_id, counselor_id=counselor)] if counselor else []


def route_client_assigned(payload: events.ClientAssigned, clinic_id: str, staff: Iterable[Staff]) -> list[Draft]:
    """The new counselor hears of their new client, and of why when an accepted referral moved the client
    (rule `referral_accepted`); then the counselor the client leaves and the front desk of the client's
    clinic hear of the move too.

    Routed from client.assigned rather than from referral.decided: this is the move that happened. Intake
    does not carry out a decision made on stale facts, and then nobody is told of a move that did not
    happen. The new counselor is addressed by id, so a counselor of another clinic (telehealth) is reached
    whether or not notify's staff read model lists them for the client's clinic."""
    counselor = payload.counselor_id
    if not payload.referral_id:
        return [Draft(counselor, NEW_CLIENT, "low", payload.client_id, counselor_id=counselor)]
    new_client = Draft(counselor, NEW_CLIENT, "medium", payload.client_id, counselor_id=counselor,
                       rule=REFERRAL_ACCEPTED, referral_id=payload.referral_id)
    front_desk = sorted(s.staff_id for s in staff if s.role == "front_desk" and s.works_in(clinic_id))
    told = [r for r in dict.fromkeys([payload.previous_counselor_id, *front_desk]) if r and r != counselor]
    return [new_client] + [Draft(r, REFERRAL_ACCEPTED, "medium", payload.client_id, counselor_id=counselor,
                                 referral_id=payload.referral_id) for r in told]


def escalation_draft(original: Draft, supervisor_id: str) -> Draft:
    return replace(original, recipient_id=supervisor_id, kind=ESCALATION, severity=HIGH)


def escalate_at(kind: str, severity: str, created_at: datetime, after: timedelta) -> datetime | None:
    """When an unacknowledged alert goes to the supervisor: only high-severity alliance alerts do."""
    return created_at + after if kind == ALLIANCE_DROPPED and severity == HIGH else None


# --- preferences, quiet hours and digests --------------------------------------------------------------

@dataclass(frozen=True)
class Preferences:
    email: str | None = None
    webhook_url: str | None = None
    # kind -> external channels wanted; a kind not listed gets every configured channel.
    channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    quiet_start: time | None = None
    quiet_end: time | None = None
    timezone: str = "UTC"
    daily_digest: bool = False

    def configured(self) -> tuple[str, ...]:
        return tuple(c for c, target in ((EMAIL, self.email), (WEBHOOK, self.webhook_url)) if target)

    def channels_for(self, kind: str) -> tuple[str, ...]:
        wanted = self.channels.get(kind, EXTERNAL_CHANNELS)
        return tuple(c for c in self.configured() if c in wanted)


def quiet_until(now: datetime, prefs: Preferences) -> datetime | None:
    """The end of the recipient's quiet hours if `now` (aware) falls inside them, else None.

    Quiet hours are local wall-clock times in the recipient's timezone and may span midnight (22:00-07:00).
    """
    if prefs.quiet_start is None or prefs.quiet_end is None or prefs.quiet_start == prefs.quiet_end:
        return None
    zone = ZoneInfo(prefs.timezone)
    local = now.astimezone(zone)
    start, end, clock = prefs.quiet_start, prefs.quiet_end, local.time().replace(tzinfo=None)
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if not inside:
        return None
    end_day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(now.tzinfo)


def next_digest_at(now: datetime, prefs: Preferences, digest_hour: int) -> datetime:
    """The next daily digest moment (digest_hour local time) strictly after `now`."""
    zone = ZoneInfo(prefs.timezone)
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), time(digest_hour), tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), time(digest_hour), tzinfo=zone)
    return candidate.astimezone(now.tzinfo)


@dataclass(frozen=True)
class DeliveryPlan:
    channel: str
    due_at: datetime
    digest: bool = False


def plan_deliveries(kind: str, severity: str, now: datetime, prefs: Preferences,
                    digest_hour: int) -> list[DeliveryPlan]:
    """External deliveries for a new notification (the in-app copy always exists at once).

    High severity ignores quiet hours and the digest: it is what must not wait. Others wait out quiet hours;
    e-mail of a recipient who chose the daily digest is gathered into it.
    """
    plans = []
    for channel in prefs.channels_for(kind):
        if severity == HIGH:
            plans.append(DeliveryPlan(channel, now))
        elif channel == EMAIL and prefs.daily_digest:
            plans.append(DeliveryPlan(channel, next_digest_at(now, prefs, digest_hour), digest=True))
        else:
            plans.append(DeliveryPlan(channel, quiet_until(now, prefs) or now))
    return plans


def retry_delay(attempts: int, base_s: float, max_s: float) -> timedelta:
    """Exponential backoff after the `attempts`-th failure: base, 2·base, 4·base ... capped at max."""
    return timedelta(seconds=min(base_s * 2 ** max(attempts - 1, 0), max_s))


# --- the inbox ------------------------------------------------------------------------------------------

class Listed(Protocol):
    """What grouping reads of a stored notification."""

    client_id: str
    created_at: datetime
    acknowledged_at: datetime | None


@dataclass(frozen=True)
class ClientGroup:
    """One client's notifications in the inbox, in the order given (newest first)."""

    client_id: str
    items: tuple[Listed, ...]

    @property
    def open(self) -> int:
        return sum(n.acknowledged_at is None for n in self.items)


def group_by_client(notifications: Iterable[Listed]) -> list[ClientGroup]:
    """The inbox by client (a client with three alerts is one group, acknowledged together): clients with
    something still open first, then the one with the newest notification first."""
    by_client: dict[str, list[Listed]] = {}
    for n in notifications:
        by_client.setdefault(n.client_id, []).append(n)
    groups = [ClientGroup(client_id, tuple(items)) for client_id, items in by_client.items()]
    groups.sort(key=lambda g: max(n.created_at for n in g.items), reverse=True)
    groups.sort(key=lambda g: g.open == 0)  # stable: newest first within open and within done
    return groups


# --- what goes out: subjects, bodies, signatures --------------------------------------------------------

SUBJECTS = {
    ALLIANCE_DROPPED: "Alliance alert",
    REFERRAL_RECOMMENDED: "Referral to review",
    REFERRAL_ACCEPTED: "Referral accepted: client reassigned",
    NEW_CLIENT: "New client assigned",
    ESCALATION: "Escalation: unacknowledged alliance alert",
}


def client_link(intake_url: str, client_id: str) -> str:
    return f"{intake_url.rstrip('/')}/clients/{client_id}"


# Notifications about a referral lead to the referral's page: the supervisor decides there, and the counselor
# a referral moved the client away from may no longer open the client's record (the page says where the
# client went, and offers the record to whoever may open it).
REFERRAL_PAGE_KINDS = (REFERRAL_RECOMMENDED, REFERRAL_ACCEPTED)


def notification_link(draft: Draft, intake_url: str, referral_url: str | None) -> str:
    """Where a notification (in the app, in an e-mail, in a webhook) leads: the referral's page for the
    kinds above, the client's record otherwise (and when the caller has no referral pages to offer)."""
    if draft.kind in REFERRAL_PAGE_KINDS and draft.referral_id and referral_url:
        return f"{referral_url.rstrip('/')}/referrals/{draft.referral_id}"
    return client_link(intake_url, draft.client_id)


# What the alert says happened, in a counselor's words.
ALERT_KIND_WORDS = {
    "change": "The client rated the session clearly lower than their usual",
    "level": "The alliance has stayed below the questionnaire's cutoff",
    "exit_interview": "The exit interview suggests the fit is not right",
}


def subject(kind: str, severity: str, dimension: str | None) -> str:
    """An e-mail subject: the kind, severity and dimension only, never who the client is."""
    parts = [f"[Rapport] {SUBJECTS.get(kind, kind)}"]
    if dimension:
        parts.append(f"({dimension})")
    if severity == HIGH:
        parts.append("- high")
    return " ".join(parts)


class Message(Protocol):
    """What rendering reads of a stored notification (adapters.models.Notification)."""

    id: str
    kind: str
    severity: str
    org_id: str
    clinic_id: str
    recipient_id: str
    client_id: str
    counselor_id: str | None
    rule: str | None
    rules: list[str]
    alert_id: str | None
    alert_kind: str | None
    dimension: str | None
    session_number: int | None
    referral_id: str | None
    link: str
    created_at: datetime

    @property
    def suggestion(self) -> str | None: ...


def digest_subject(count: int) -> str:
    return f"[Rapport] Daily digest: {count} notifications"


def email_body(messages: Sequence[Message], notify_url: str) -> str:
    """One e-mail for one or several notifications (a digest): what happened, what to try first, links."""
    lines = ["You have notifications in Rapport.", ""]
    for n in messages:
        details = [SUBJECTS.get(n.kind, n.kind), f"severity {n.severity}"]
        details += [f"dimension {n.dimension}"] if n.dimension else []
        details += [f"rules {', '.join(n.rules)}" if n.rules else f"rule {n.rule}"] if (n.rules or n.rule) else []
        details += [f"session {n.session_number}"] if n.session_number else []
        lines += [" - ".join(details)]
        lines += [f"  {ALERT_KIND_WORDS[n.alert_kind]}."] if n.alert_kind in ALERT_KIND_WORDS else []
        lines += [f"  What to try first: {n.suggestion}"] if n.suggestion else []
        lines += [f"  {'Referral' if n.kind in REFERRAL_PAGE_KINDS else 'Client record'}: {n.link}",
                  f"  Acknowledge: {notify_url.rstrip('/')}/inbox/{n.id}", ""]
    return "\n".join(lines)


def webhook_body(n: Message) -> bytes:
    """What a webhook receives: ids, codes and links only."""
    return json.dumps({
        "notification_id": n.id, "kind": n.kind, "severity": n.severity, "org_id": n.org_id,
        "clinic_id": n.clinic_id, "recipient_id": n.recipient_id, "client_id": n.client_id,
        "counselor_id": n.counselor_id, "rule": n.rule, "rules": list(n.rules or []), "alert_id": n.alert_id,
        "alert_kind": n.alert_kind, "dimension": n.dimension, "suggestion": n.suggestion,
        "session_number": n.session_number, "referral_id": n.referral_id, "link": n.link,
        "created_at": n.created_at.isoformat()}, separators=(",", ":"), sort_keys=True).encode()


def message_id(notification_ids: Iterable[str], domain: str = "rapport.invalid") -> str:
    """A deterministic Message-ID: a resend of the same notification(s) carries the same one, so a crash
    recovery or a receiving system can recognise it."""
    digest = hashlib.sha256("|".join(sorted(notification_ids)).encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"
