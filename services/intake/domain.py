"""Intake's rules, free of web framework, broker and database: who may do what, what a client's answers
must look like, what state a link is in, and whether a counselor may take a client."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

# Who may use which part of intake. Everyone signed in may read client data of their clinics.
STAFF_ROLES = ("admin", "supervisor", "counselor", "front_desk")
CLIENT_WRITERS = ("admin", "supervisor", "front_desk")
DIRECTORY_EDITORS = ("admin", "supervisor")
STAFF_ADMINS = ("admin",)
# Who may read clients' free-text answers (exit-interview comments): not the front desk.
COMMENT_READERS = ("admin", "supervisor", "counselor")

GENDERS = ("female", "male", "nonbinary")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIMES = ("morning", "afternoon", "evening")

# The exit interview: three 5-point questions, two yes/no questions and an optional comment.
EXIT_SCALE = (1, 5)
EXIT_QUESTIONS = (
    ("comfortable", "I feel comfortable working with this counselor."),
    ("style_fit", "This counselor's style fits me."),
    ("confident_progress", "I am confident we can make progress together."),
)
EXIT_YES_NO = (
    ("outside_expertise", "My concerns feel outside this counselor's expertise."),
    ("wants_someone_else", "I would like to see someone else."),
)
EXIT_COMMENT_MAX = 2000


class NotFound(LookupError):
    """The object does not exist or is outside the caller's organisation and clinics."""


class Refused(ValueError):
    """A request that is well-formed but breaks a rule; `field` names the input at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class Forbidden(PermissionError):
    """The caller's role may not make this change; `field` names what they may not set."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class Conflict(ValueError):
    """The request would make a second of what there may be only one; `field` names the input, `existing` the
    id of what is there already."""

    def __init__(self, field: str, message: str, existing: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.existing = field, message, existing


class AnswersInvalid(ValueError):
    """A client's answers do not fit the questionnaire; `errors` maps each field to a message."""

    def __init__(self, errors: Mapping[str, str]):
        super().__init__(f"invalid fields: {sorted(errors)}")
        self.errors = dict(errors)


class LinkClosed(Exception):
    """A link that can no longer be answered; `state` is `answered` or `expired`."""

    def __init__(self, state: str):
        super().__init__(state)
        self.state = state


@dataclass(frozen=True)
class FormItem:
    link_id: str
    text: str
    minimum: int
    maximum: int

    @property
    def choices(self) -> range:
        return range(self.minimum, self.maximum + 1)


def instrument_form(definition: Mapping[str, Any], supplied_texts: Mapping[str, str]) -> list[FormItem]:
    """The items a client answers. An item shipped without text (a licensed scale's wording is not ours to
    ship) shows the text the organisation supplied, else its number (and short label, if any). Answers are
    whole numbers: a 0-10 "visual analogue" item is offered as eleven steps, which a phone handles well."""
    items = []
    for number, raw in enumerate(definition["item"], start=1):
        extra = raw["rapport"]
        fallback = f"Item {raw.get('prefix') or number}" + (f": {extra['label']}" if extra.get("label") else "")
        text = raw.get("text") or supplied_texts.get(raw["linkId"]) or fallback
        items.append(FormItem(raw["linkId"], text, int(extra["min"]), int(extra["max"])))
    return items


def validate_answers(items: Sequence[FormItem], raw: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, str]]:
    """Every item answered with a whole number in its range, nothing else: (answers, errors by link id)."""
    answers, errors = {}, {}
    for item in items:
        value = raw.get(item.link_id)
        if value is None or value == "":
            errors[item.link_id] = "Please choose an answer."
            continue
        number = _whole_number(value)
        if number is None or not item.minimum <= number <= item.maximum:
            errors[item.link_id] = f"Choose a number from {item.minimum} to {item.maximum}."
            continue
        answers[item.link_id] = number
    for unknown in sorted(set(raw) - {i.link_id for i in items}):
        errors[unknown] = "Not an item of this questionnaire."
    return answers, errors


def validate_exit_interview(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, errors by field) for an exit interview's answers, from a form or JSON."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    low, high = EXIT_SCALE
    for name, _ in EXIT_QUESTIONS:
        number = _whole_number(raw.get(name))
        if number is None or not low <= number <= high:
            errors[name] = f"Please choose from {low} to {high}."
        else:
            values[name] = number
    for name, _ in EXIT_YES_NO:
        answer = _yes_no(raw.get(name))
        if answer is None:
            errors[name] = "Please answer yes or no."
        else:
            values[name] = answer
    comment = raw.get("comment") or ""
    if not isinstance(comment, str) or len(comment) > EXIT_COMMENT_MAX:
        errors["comment"] = f"Please keep the comment under {EXIT_COMMENT_MAX} characters."
    else:
        values["comment"] = comment.strip() or None
    return values, errors


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _yes_no(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    return {"yes": True, "no": False, "true": True, "false": False}.get(str(value).lower()) if value else None


def link_state(expires_at: datetime, answered: bool, now: datetime) -> str:
    """`open`, `answered` or `expired`: an answered link stays answered even after it expires."""
    if answered:
        return "answered"
    return "expired" if now >= expires_at else "open"


@dataclass(frozen=True)
class CounselorFacts:
    staff_id: str
    org_id: str
    role: str
    clinic_ids: tuple[str, ...]
    active: bool
    offers_telehealth: bool = False


def check_assignment(org_id: str, clinic_id: str, counselor: CounselorFacts | None) -> None:
    """A client may only be given an active counselor of the same organisation who works at its clinic, or
    who offers telehealth (which, as in referral's matching, reaches every clinic of the organisation)."""
    if counselor is None or counselor.org_id != org_id or counselor.role != "counselor":
        raise Refused("counselor_id", "No such counselor in this organisation.")
    if not counselor.active:
        raise Refused("counselor_id", "This counselor is no longer active.")
    if clinic_id not in counselor.clinic_ids and not counselor.offers_telehealth:
        raise Refused("counselor_id", "This counselor does not work at the client's clinic or offer telehealth.")


def referral_is_stale(decided_for: str | None, current: str | None, already_recorded: bool) -> bool:
    """Whether an accepted referral was decided on facts that no longer hold: it was made to move the client
    away from `decided_for`, but the client's counselor is `current` now (another referral or the front desk
    moved them first). A decision whose assignment is recorded already is a redelivery, never stale: the
    client's counselor is then the one it chose."""
    return not already_recorded and decided_for != current


def counseled_before(staff_id: str, assignments: Sequence[tuple[str, str | None]]) -> bool:
    """Whether the staff member was this client's counselor at some point: named in an assignment of the
    history, as the counselor given or the one the client left (a first counselor set at registration
    appears as the latter once the client moves)."""
    return any(staff_id in pair for pair in assignments)


def next_session_number(existing: Sequence[int]) -> int:
    return max(existing, default=0) + 1


# What a supervisor may change of a counselor in their clinics: the directory entry. Accounts - passwords,
# roles, clinics, supervisors, activation - are an administrator's, who sees every clinic of the
# organisation: a supervisor of one clinic must not reach a counselor's other clinics through them.
SUPERVISOR_EDITABLE = frozenset({"counselor", "display_name"})


def check_staff_change(actor_role: str, target_role: str, changed: frozenset[str]) -> None:
    if actor_role == "admin":
        return
    if actor_role != "supervisor" or target_role != "counselor":
        raise Forbidden("role", "Only an administrator manages this staff member.")
    beyond = sorted(changed - SUPERVISOR_EDITABLE)
    if beyond:
        raise Forbidden(beyond[0], "Only an administrator changes this.")


# --- reaching the client with a link: consent, reasons for a second link, reminders, the message ---

CONTACT_CHANNELS = ("email", "sms")
# Why an exit interview is asked again for a session whose interview the client answered; "other" needs a
# note. A session's rating is never asked again: a session is rated once (the first rating stands), so a new
# feedback link would only tell the client it was answered.
REISSUE_REASONS = {
    "answered_by_someone_else": "Someone other than the client answered",
    "client_asked_to_answer_again": "The client asked to answer again",
    "other": "Another reason (say which in the note)",
}
REISSUE_NOTE_MAX = 500


@dataclass(frozen=True)
class ContactFacts:
    """What decides whether a client may be sent something on a channel: consent and an address."""
    email_consent: bool
    sms_consent: bool
    email: str | None
    phone: str | None


def contact_refusal(channel: str, facts: ContactFacts, sms_available: bool) -> str | None:
    """Why the client may not be contacted on `channel` (a sentence for the front desk), or None if they may.
    Consent is per channel and recorded; an address alone is not consent."""
    if channel == "email":
        if not facts.email_consent:
            return "The client has not agreed to be contacted by e-mail: record their consent first."
        if not facts.email:
            return "No e-mail address is recorded for this client."
        return None
    if channel == "sms":
        if not sms_available:
            return "Text messages are not set up for this deployment."
        if not facts.sms_consent:
            return "The client has not agreed to text messages: record their consent first."
        if not facts.phone:
            return "No phone number is recorded for this client."
        return None
    return "Choose e-mail or text message."


def check_contact(channel: str, facts: ContactFacts, sms_available: bool) -> None:
    refusal = contact_refusal(channel, facts, sms_available)
    if refusal:
        raise Refused("channel", refusal)


def check_reissue(kind: str, already_answered: bool, reason: str | None, note: str | None) -> None:
    """A rated session gets no second feedback link, and the front desk is told why. An answered exit
    interview is asked again only with a reason (and, for "other", a note): an accidental second link asks
    the client twice; a deliberate one leaves a record of why."""
    if not already_answered:
        return
    if kind == "feedback":
        raise Refused("session_id", "The client rated this session already. A session is rated once, so a new "
                                    "link would only tell them it was answered: record the next session instead.")
    if not reason:
        raise Refused("reissue_reason", "The client answered for this session already. Say why a new link "
                                        "is needed, or leave it.")
    if reason not in REISSUE_REASONS:
        raise Refused("reissue_reason", "Choose one of the reasons.")
    if reason == "other" and not (note or "").strip():
        raise Refused("reissue_note", "Say in a few words why a new link is needed.")
    if note and len(note) > REISSUE_NOTE_MAX:
        raise Refused("reissue_note", f"Please keep the note under {REISSUE_NOTE_MAX} characters.")


@dataclass(frozen=True)
class ReminderPolicy:
    after: timedelta  # since the link was made or last sent
    max_reminders: int


def reminder_due(policy: ReminderPolicy, state: str, reminders_sent: int, last_contact_at: datetime,
                 now: datetime) -> bool:
    """An open (unanswered, unexpired) link is reminded of `after` its last contact, up to `max_reminders`
    times. Consent is checked separately (reminder_channel)."""
    return state == "open" and reminders_sent < policy.max_reminders and now >= last_contact_at + policy.after


def reminder_channel(facts: ContactFacts, sms_available: bool) -> str | None:
    """E-mail where the client agreed to it and has an address, else a text message likewise, else none."""
    return next((c for c in CONTACT_CHANNELS if contact_refusal(c, facts, sms_available) is None), None)


@dataclass(frozen=True)
class LinkMessage:
    subject: str
    body: str  # the e-mail's text
    text: str  # the SMS


# What a message to the client says: who asks and the link, nothing about why they see a counselor.
_ASKS = {"feedback": "Your counselor asks how the session went.",
         "exit_interview": "Your clinic asks a few questions about working with your counselor."}


def link_message(kind: str, url: str, expires_at: datetime, reminder: bool) -> LinkMessage:
    asks = _ASKS[kind]
    lead = f"A reminder: {asks[0].lower()}{asks[1:]}" if reminder else asks
    until = expires_at.strftime("%Y-%m-%d %H:%M UTC")
    body = (f"Hello,\n\n{lead} It takes about a minute:\n\n{url}\n\n"
            f"The link works once, until {until}.\nIf you did not expect this message, you can ignore it.\n")
    subject = "Reminder: a short question from your clinic" if reminder else "A short question from your clinic"
    return LinkMessage(subject, body, f"{lead} {url}")
