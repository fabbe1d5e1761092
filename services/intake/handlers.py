"""Intake's handlers: plain functions, listed in COMMAND_HANDLERS and EVENT_HANDLERS at the bottom.

Every write that produces events stores them in the written document's `pending_events` (one write), then
publishes them; whatever could not be published is left to the outbox relay in the worker.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Callable

import mongoengine as me
from pymongo.errors import DuplicateKeyError

import uuid

from services.common import sessions
from services.common.auth import Identity
from services.common.bus import Clock
from services.common.config import Settings
from services.common.events import CrossTenantEvent, Event, InvalidEvent, Topic, derived_id, make_event, new_id
from services.common.instruments import instrument_definitions
from services.common.mail import SmtpMailer
from services.common.outbox import Publish, outbox_entry, publish_or_defer
from services.common.webhooks import DeliveryError

from services.intake import domain, queries
from services.intake.adapters import links
from services.intake.adapters.accounts import MIN_PASSWORD_LENGTH, hash_password, normalise_email
from services.intake.adapters.models import (Assignment, Client, Clinic, ContactConsent, CounselorProfile,
                                             ExitInterview, FeedbackRequest, FeedbackSubmission, LinkDelivery,
                                             Organisation, Session, Staff)
from services.intake.adapters.sms import SmsSender
from services.intake.commands import (AnswerExitInterview, AnswerFeedbackLink, AssignCounselor, CreateClinic,
                                      CreateFeedbackRequest, CreateStaff, RecordContactConsent, RecordSession,
                                      RegisterClient, SeedOrganisation, SendDueReminders, SendLink, SignOut,
                                      SubmitFeedback, UpdateClinic, UpdateStaff)

log = logging.getLogger(__name__)
PRODUCER = "intake"
# What of a client's preferences travels in intake.submitted; days and times stay here.
EVENT_PREFERENCES = ("language", "modality", "counselor_gender")
NEXT_SESSION_ATTEMPTS = 5  # tries at a client's next session number while concurrent recordings take it first
# A session's rating has an id derived from the client and the session: one rating per session, whichever
# way it comes (a link, another link, staff entering it), and a repeated one finds the first.
RATING_NAMESPACE = uuid.UUID("9d2b7c0e-51f4-4a8e-8f3e-2c6a5b1d7e90")
# Changes that end a staff member's sessions: what the token says about them is no longer true.
SESSION_ENDING_CHANGES = ("role", "clinic_ids", "password_hash", "active")


def _counselor_facts(staff: Staff | None) -> domain.CounselorFacts | None:
    if staff is None:
        return None
    profile = staff.counselor
    telehealth = profile is not None and "telehealth" in (profile.modalities or [])
    return domain.CounselorFacts(staff.id, staff.org_id, staff.role, tuple(staff.clinic_ids), staff.active,
                                 offers_telehealth=telehealth)


# --- organisation and staff ---

def seed_organisation(cmd: SeedOrganisation, publish: Publish | None) -> Staff:
    """The organisation, its clinics and its first admin; returns the admin (existing or new). Without a
    publisher (no broker yet) the worker's outbox relay publishes the admin's staff.updated later."""
    if len(cmd.admin_password) < MIN_PASSWORD_LENGTH:
        raise domain.Refused("admin_password", f"Use at least {MIN_PASSWORD_LENGTH} characters.")
    if Organisation.objects(id=cmd.org_id).first() is None:
        Organisation(id=cmd.org_id, name=cmd.org_name).save()
    for clinic_id, name in cmd.clinics.items():
        existing = Clinic.objects(id=clinic_id).first()
        if existing is None:
            Clinic(id=clinic_id, org_id=cmd.org_id, name=name).save(force_insert=True)
        elif existing.org_id != cmd.org_id:
            raise domain.Refused("clinics", f"Clinic id {clinic_id} belongs to another organisation.")
    admin = Staff.objects(email=normalise_email(cmd.admin_email)).first()
    if admin is not None:
        if admin.org_id != cmd.org_id:
            raise domain.Refused("admin_email", "That e-mail belongs to a staff member of another organisation.")
        return admin
    admin = Staff(id=f"{cmd.org_id}-admin", org_id=cmd.org_id, email=normalise_email(cmd.admin_email),
                  display_name=cmd.admin_name, password_hash=hash_password(cmd.admin_password), role="admin",
                  clinic_ids=list(cmd.clinics))
    admin.pending_events = [outbox_entry(e, key=admin.id) for e in staff_events(admin)]
    admin.save(force_insert=True)
    if publish is not None:
        publish_or_defer(admin, publish)
    return admin


def create_clinic(cmd: CreateClinic) -> Clinic:
    _check_instrument(cmd.instrument_id)
    clinic = Clinic(id=new_id(), org_id=cmd.actor.org_id, name=cmd.name, instrument_id=cmd.instrument_id)
    clinic.save(force_insert=True)
    return clinic


def update_clinic(cmd: UpdateClinic) -> Clinic:
    clinic = queries.scoped_clinic(cmd.actor, cmd.clinic_id)
    if "instrument_id" in cmd.changes:
        _check_instrument(cmd.changes["instrument_id"])
    for name, value in cmd.changes.items():
        setattr(clinic, name, value)
    clinic.save()
    return clinic


def _check_instrument(instrument_id: str) -> None:
    if instrument_id not in instrument_definitions():
        raise domain.Refused("instrument_id", "No such instrument.")


def _check_clinics(actor: Identity, clinic_ids: list[str]) -> None:
    known = {c.id for c in Clinic.objects(org_id=actor.org_id, id__in=list(clinic_ids)).only("id")}
    if not clinic_ids or set(clinic_ids) - known:
        raise domain.Refused("clinic_ids", "Choose one or more clinics of this organisation.")
    if not actor.is_admin and set(clinic_ids) - set(actor.clinic_ids):
        raise domain.Refused("clinic_ids", "You may only place staff in your own clinics.")


def _check_supervisor(org_id: str, supervisor_id: str | None) -> None:
    if supervisor_id and not Staff.objects(id=supervisor_id, org_id=org_id, role__in=("supervisor", "admin")):
        raise domain.Refused("supervisor_id", "No such supervisor in this organisation.")


def create_staff(cmd: CreateStaff, publish: Publish) -> Staff:
    if cmd.actor.role != "admin":
        raise domain.Forbidden("role", "Only an administrator adds staff.")
    _check_clinics(cmd.actor, cmd.clinic_ids)
    _check_supervisor(cmd.actor.org_id, cmd.supervisor_id)
    staff = Staff(id=new_id(), org_id=cmd.actor.org_id, email=normalise_email(cmd.email),
                  display_name=cmd.display_name, password_hash=hash_password(cmd.password), role=cmd.role,
                  clinic_ids=list(cmd.clinic_ids), supervisor_id=cmd.supervisor_id,
                  counselor=CounselorProfile(**(cmd.counselor or {})) if cmd.role == "counselor" else None)
    events = staff_events(staff)
    staff.pending_events = [outbox_entry(e, key=staff.id) for e in events]
    try:
        staff.save(force_insert=True)
    except (me.NotUniqueError, DuplicateKeyError):
        raise domain.Refused("email", "A staff member of this organisation has this e-mail already.") from None
    publish_or_defer(staff, publish)
    _record_token_state(staff, events)
    return staff


def update_staff(cmd: UpdateStaff, publish: Publish) -> Staff:
    staff = queries.scoped_staff(cmd.actor, cmd.staff_id)
    was_counselor = staff.role == "counselor"
    changes = dict(cmd.changes)
    domain.check_staff_change(cmd.actor.role, staff.role, frozenset(changes))
    if "clinic_ids" in changes:
        _check_clinics(cmd.actor, changes["clinic_ids"])
    if "supervisor_id" in changes:
        _check_supervisor(staff.org_id, changes["supervisor_id"])
    if "password" in changes:
        changes["password_hash"] = hash_password(changes.pop("password"))
    profile = changes.pop("counselor", None)
    if any(name in changes and changes[name] != getattr(staff, name) for name in SESSION_ENDING_CHANGES):
        changes["token_version"] = staff.token_version + 1
    for name, value in changes.items():
        setattr(staff, name, value)
    if staff.role == "counselor":
        staff.counselor = staff.counselor or CounselorProfile()
        for name, value in (profile or {}).items():
            setattr(staff.counselor, name, value)
    elif profile:
        raise domain.Refused("counselor", "Only counselors have a directory profile.")
    updates = {f"set__{name}": getattr(staff, name) for name in (*changes, "counselor")}
    events = staff_events(staff)
    if was_counselor and staff.role != "counselor":
        # No longer in the directory: say so, or referral would keep recommending them.
        events.append(_counselor_event(staff, listed=False))
    _save_with_events(staff, updates, events, publish)
    return staff


def sign_out(cmd: SignOut, publish: Publish) -> None:
    """Raise the member's token version: every token they hold, on every device, stops working."""
    staff = Staff.objects(id=cmd.actor.staff_id, org_id=cmd.actor.org_id).first()
    if staff is None:
        return
    staff.token_version += 1
    _save_with_events(staff, {"set__token_version": staff.token_version}, staff_events(staff), publish)


def _save_with_events(staff: Staff, updates: dict, events: list[Event], publish: Publish) -> None:
    """One atomic update of the staff document: the change and the events announcing it."""
    entries = [outbox_entry(e, key=staff.id) for e in events]
    Staff.objects(id=staff.id).update_one(**updates, push_all__pending_events=entries)
    staff.reload()
    _record_token_state(staff, events)
    publish_or_defer(staff, publish)


def _record_token_state(staff: Staff, events: list[Event]) -> None:
    # Intake's own API reads the member's token state at once; the others hear of it from staff.updated.
    # Stamped with the events' time, as the other services store it from them.
    sessions.record(staff.org_id, staff.id, staff.token_version, staff.active, events[0].occurred_at)


def staff_events(staff: Staff, correlation_id: str | None = None) -> list[Event]:
    # Staff carry no client data; the envelope's clinic is the staff member's first (home) clinic.
    common = {"org_id": staff.org_id, "clinic_id": staff.clinic_ids[0], "producer": PRODUCER,
              "correlation_id": correlation_id}
    events = [make_event(Topic.STAFF_UPDATED, {
        "staff_id": staff.id, "role": staff.role, "clinic_ids": list(staff.clinic_ids),
        "supervisor_id": staff.supervisor_id, "active": staff.active, "token_version": staff.token_version},
        **common)]
    if staff.role == "counselor":
        events.append(_counselor_event(staff, correlation_id))
    return events


def _counselor_event(staff: Staff, correlation_id: str | None = None, listed: bool = True) -> Event:
    profile = staff.counselor or CounselorProfile()
    return make_event(Topic.COUNSELOR_UPDATED, {
        "counselor_id": staff.id, "clinic_ids": list(staff.clinic_ids), "specialties": list(profile.specialties),
        "languages": list(profile.languages), "modalities": list(profile.modalities),
        "weekly_capacity": profile.weekly_capacity, "caseload": queries.caseload(staff.id),
        "accepting_new_clients": profile.accepting_new_clients, "supervisor_id": staff.supervisor_id,
        "gender": profile.gender, "active": staff.active and listed,
    }, org_id=staff.org_id, clinic_id=staff.clinic_ids[0], producer=PRODUCER, correlation_id=correlation_id)


def _announce_caseload(counselor_ids: list[str | None], publish: Publish, correlation_id: str | None) -> None:
    # A second write after the assignment (no multi-document transactions): if the process dies in
    # between, the directory's caseload is stale until the counselor's next change. Referral treats
    # caseload as a hint, so we accept that rather than put counselor events in client documents.
    for counselor_id in dict.fromkeys(c for c in counselor_ids if c):
        staff = Staff.objects(id=counselor_id, role="counselor").first()
        if staff is not None:
            _save_with_events(staff, {}, [_counselor_event(staff, correlation_id)], publish)


# --- clients, assignments and sessions ---

def register_client(cmd: RegisterClient, publish: Publish, clock: Clock) -> Client:
    actor = cmd.actor
    try:
        clinic = queries.scoped_clinic(actor, cmd.clinic_id)
    except domain.NotFound:
        raise domain.Refused("clinic_id", "Choose one of your clinics.") from None
    if cmd.counselor_id:
        counselor = Staff.objects(id=cmd.counselor_id).first()
        domain.check_assignment(actor.org_id, clinic.id, _counselor_facts(counselor))
    client_id, intake_id = new_id(), new_id()
    common = {"org_id": actor.org_id, "clinic_id": clinic.id, "producer": PRODUCER}
    # The event names the client by id only; name, birth date, contact and notes stay in this service.
    submitted = make_event(Topic.INTAKE_SUBMITTED, {
        "intake_id": intake_id, "client_id": client_id, "concerns": list(cmd.concerns),
        "preferences": {k: v for k, v in cmd.preferences.items() if k in EVENT_PREFERENCES},
        "urgency": cmd.urgency, "assigned_counselor_id": cmd.counselor_id,
    }, **common)
    events, assignments = [submitted], []
    if cmd.counselor_id:
        assignments.append(Assignment(assignment_id=new_id(), counselor_id=cmd.counselor_id,
                                      assigned_by=actor.staff_id))
        events.append(make_event(Topic.CLIENT_ASSIGNED, {
            "client_id": client_id, "counselor_id": cmd.counselor_id, "previous_counselor_id": None,
            "assigned_by": actor.staff_id, "referral_id": None, "concerns": list(cmd.concerns),
        }, **common, correlation_id=submitted.correlation_id))
    client = Client(
        id=client_id, intake_id=intake_id, org_id=actor.org_id, clinic_id=clinic.id,
        first_name=cmd.first_name, last_name=cmd.last_name, date_of_birth=cmd.date_of_birth,
        email=cmd.email, phone=cmd.phone, concerns=list(cmd.concerns), preferences=dict(cmd.preferences),
        urgency=cmd.urgency, notes=cmd.notes, counselor_id=cmd.counselor_id, assignments=assignments,
        assignment_ids=[a.assignment_id for a in assignments],
        consents=[_consent(cmd.contact_consent, actor, clock())] if cmd.contact_consent else [],
        created_by=actor.staff_id, pending_events=[outbox_entry(e, key=client_id) for e in events],
    )
    client.save(force_insert=True)
    publish_or_defer(client, publish)
    _announce_caseload([cmd.counselor_id], publish, submitted.correlation_id)
    return client


def assign_counselor(cmd: AssignCounselor, publish: Publish) -> Client:
    client = queries.scoped_client(cmd.actor, cmd.client_id)
    counselor = Staff.objects(id=cmd.counselor_id).first()
    domain.check_assignment(client.org_id, client.clinic_id, _counselor_facts(counselor))
    return _assign(client, cmd.counselor_id, assigned_by=cmd.actor.staff_id, assignment_id=new_id(),
                   referral_id=None, correlation_id=None, publish=publish)


def _assign(client: Client, counselor_id: str, *, assigned_by: str, assignment_id: str,
            referral_id: str | None, correlation_id: str | None, publish: Publish) -> Client:
    """Record an assignment and its client.assigned event in one update, at most once per assignment id."""
    previous = client.counselor_id
    event = make_event(Topic.CLIENT_ASSIGNED, {
        "client_id": client.id, "counselor_id": counselor_id, "previous_counselor_id": previous,
        "assigned_by": assigned_by, "referral_id": referral_id, "concerns": list(client.concerns),
    }, org_id=client.org_id, clinic_id=client.clinic_id, producer=PRODUCER, correlation_id=correlation_id)
    entry = Assignment(assignment_id=assignment_id, counselor_id=counselor_id, previous_counselor_id=previous,
                       assigned_by=assigned_by, referral_id=referral_id)
    recorded = Client.objects(id=client.id, assignment_ids__ne=assignment_id).update_one(
        set__counselor_id=counselor_id, push__assignments=entry, push__assignment_ids=assignment_id,
        push__pending_events=outbox_entry(event, key=client.id))
    client.reload()
    # Also after a redelivery (recorded == 0): publish whatever the first attempt left pending.
    publish_or_defer(client, publish)
    if recorded:
        _announce_caseload([previous, counselor_id], publish, event.correlation_id)
    return client


def record_session(cmd: RecordSession) -> Session:
    client = queries.scoped_client(cmd.actor, cmd.client_id)
    counselor_id = cmd.counselor_id or client.counselor_id
    if not counselor_id:
        raise domain.Refused("counselor_id", "Assign a counselor to this client first.")
    if counselor_id != client.counselor_id:
        domain.check_assignment(client.org_id, client.clinic_id,
                                _counselor_facts(Staff.objects(id=counselor_id).first()))
    # Without a number the session is the client's next one: a concurrent recording that took that number
    # first moves this one to the number after it, as if the two had come one after the other.
    for _ in range(NEXT_SESSION_ATTEMPTS):
        numbers = [s.number for s in Session.objects(client_id=client.id).only("number")]
        number = cmd.number or domain.next_session_number(numbers)
        session = Session(id=new_id(), org_id=client.org_id, clinic_id=client.clinic_id, client_id=client.id,
                          counselor_id=counselor_id, number=number, held_on=cmd.held_on,
                          recorded_by=cmd.actor.staff_id)
        try:
            session.save(force_insert=True)
            return session
        except (me.NotUniqueError, DuplicateKeyError):
            if cmd.number:
                break
    raise domain.Refused("number", f"Session {number} of this client is recorded already.")


# --- feedback and exit interviews ---

def create_feedback_request(cmd: CreateFeedbackRequest, clock: Clock) -> FeedbackRequest:
    client = queries.scoped_client(cmd.actor, cmd.client_id)
    session = Session.objects(id=cmd.session_id, client_id=client.id).first()
    if session is None:
        raise domain.Refused("session_id", "No such session of this client.")
    answered = queries.session_answered(client.id, session.number, cmd.kind)
    domain.check_reissue(cmd.kind, answered, cmd.reissue_reason, cmd.reissue_note)
    clinic = Clinic.objects(id=client.clinic_id).first()
    request = FeedbackRequest(
        id=new_id(), kind=cmd.kind, org_id=client.org_id, clinic_id=client.clinic_id, client_id=client.id,
        counselor_id=session.counselor_id, session_id=session.id, session_number=session.number,
        instrument_id=clinic.instrument_id if cmd.kind == "feedback" else None,
        expires_at=clock() + cmd.valid_for, created_by=cmd.actor.staff_id,
        reissue_reason=cmd.reissue_reason if answered else None,
        reissue_note=((cmd.reissue_note or "").strip() or None) if answered else None)
    request.save(force_insert=True)
    return request


# --- reaching the client: consent, sending a link, reminders ---

# A reminder's id derives from its link and its number: recorded once, whichever pass or process gets there.
REMINDER_NAMESPACE = uuid.UUID("5f0b8e3a-7c21-4d59-9e64-1a7b2c3d4e5f")


def _consent(choice, actor: Identity, now: datetime) -> ContactConsent:
    return ContactConsent(email=bool(choice.get("email")), sms=bool(choice.get("sms")),
                          recorded_by=actor.staff_id, recorded_at=now)


def record_contact_consent(cmd: RecordContactConsent, clock: Clock) -> Client:
    """Appended, never overwritten: who recorded which consent when stays on the record."""
    client = queries.scoped_client(cmd.actor, cmd.client_id)
    Client.objects(id=client.id).update_one(
        push__consents=_consent({"email": cmd.email, "sms": cmd.sms}, cmd.actor, clock()))
    client.reload()
    return client


def send_link(cmd: SendLink, clock: Clock, settings: Settings, mailer: SmtpMailer,
              sms: SmsSender | None) -> LinkDelivery:
    request, client = queries.scoped_request(cmd.actor, cmd.request_id)
    now = clock()
    state = domain.link_state(request.expires_at, request.answered_at is not None, now)
    if state != "open":
        raise domain.Refused("channel", f"This link is {state}: make a new one to send.")
    domain.check_contact(cmd.channel, queries.contact_facts(client), sms is not None)
    delivery = LinkDelivery(id=new_id(), request_id=request.id, org_id=client.org_id, client_id=client.id,
                            channel=cmd.channel, purpose="link", sent_by=cmd.actor.staff_id, at=now,
                            outcome="sending")
    delivery.save(force_insert=True)
    _deliver(delivery, request, client, settings, mailer, sms, now)
    if delivery.outcome == "failed":
        raise domain.Refused("channel", f"The message could not be sent ({delivery.error}). Check the address, "
                                        "or try again later.")
    FeedbackRequest.objects(id=request.id).update_one(set__last_sent_at=now)
    return delivery


def send_due_reminders(cmd: SendDueReminders, clock: Clock, settings: Settings, mailer: SmtpMailer,
                       sms: SmsSender | None) -> int:
    """One reminder for each open link that is due and whose client agreed to a channel; the number sent.

    A reminder is recorded (and counted on its link) before it is sent, under an id derived from the link
    and the reminder's number. So a pass that dies mid-send, or two workers at once, never send it twice;
    the price is that a reminder recorded but not sent when the process died is not sent at all. For a
    nudge to a client, one missed is better than one too many.
    """
    now = clock()
    policy = domain.ReminderPolicy(timedelta(hours=settings.link_reminder_after_hours), settings.link_reminder_max)
    sent = 0
    for request in FeedbackRequest.objects(answered_at=None, expires_at__gt=now,
                                           reminders_sent__lt=policy.max_reminders):
        state = domain.link_state(request.expires_at, False, now)
        if not domain.reminder_due(policy, state, request.reminders_sent, request.last_sent_at or request.created_at,
                                   now):
            continue
        client = Client.objects(id=request.client_id).first()
        channel = client and domain.reminder_channel(queries.contact_facts(client), sms is not None)
        if not channel:
            continue
        number = request.reminders_sent + 1
        delivery = LinkDelivery(id=derived_id(REMINDER_NAMESPACE, request.id, number), request_id=request.id,
                                org_id=client.org_id, client_id=client.id, channel=channel, purpose="reminder",
                                at=now, outcome="sending")
        try:
            delivery.save(force_insert=True)
        except (me.NotUniqueError, DuplicateKeyError):
            recorded = True  # an earlier pass recorded it and stopped before counting it
        else:
            recorded = False
        FeedbackRequest.objects(id=request.id, reminders_sent__lt=number).update_one(
            set__reminders_sent=number, set__last_sent_at=now)
        if not recorded:
            _deliver(delivery, request, client, settings, mailer, sms, now)
            sent += delivery.outcome == "sent"
    return sent


def _deliver(delivery: LinkDelivery, request: FeedbackRequest, client: Client, settings: Settings,
             mailer: SmtpMailer, sms: SmsSender | None, now: datetime) -> None:
    """Send a recorded delivery and record its outcome; a failure is kept, not raised."""
    url = links.url(settings.intake_url, settings.jwt_secret, request.kind, request.id, request.expires_at)
    message = domain.link_message(request.kind, url, request.expires_at, reminder=delivery.purpose == "reminder")
    try:
        if delivery.channel == "email":
            mailer.send(client.email, message.subject, message.body, f"<{delivery.id}@rapport.invalid>", now)
        else:
            sms.send(client.phone, message.text, delivery.id, now)
    except DeliveryError as exc:
        delivery.outcome, delivery.error = "failed", str(exc)
        log.warning("link delivery %s failed: %s", delivery.id, exc)
    else:
        delivery.outcome = "sent"
    LinkDelivery.objects(id=delivery.id).update_one(set__outcome=delivery.outcome, set__error=delivery.error)


def submit_feedback(cmd: SubmitFeedback, publish: Publish) -> FeedbackSubmission:
    client = queries.scoped_client(cmd.actor, cmd.client_id)
    counselor_id = cmd.counselor_id or client.counselor_id
    if not counselor_id:
        raise domain.Refused("counselor_id", "The client has no counselor; name one.")
    instrument_id = cmd.instrument_id or Clinic.objects(id=client.clinic_id).first().instrument_id
    answers, errors = domain.validate_answers(queries.questionnaire(client.org_id, instrument_id), cmd.answers)
    if errors:
        raise domain.AnswersInvalid(errors)
    rating_id = rating_id_for(client.id, cmd.session_number)
    try:
        return _store_feedback(rating_id, client.org_id, client.clinic_id, client.id, counselor_id,
                               cmd.session_number, instrument_id, answers, cmd.actor.staff_id, publish)
    except domain.LinkClosed:
        raise domain.Conflict("session_number", f"Session {cmd.session_number} of this client is rated already.",
                              rating_id) from None


def rating_id_for(client_id: str, session_number: int) -> str:
    return derived_id(RATING_NAMESPACE, client_id, session_number)


def answer_feedback_link(cmd: AnswerFeedbackLink, publish: Publish, clock: Clock) -> FeedbackSubmission:
    request = queries.open_request(cmd.request_id, "feedback", clock())
    answers, errors = domain.validate_answers(queries.questionnaire(request.org_id, request.instrument_id), cmd.answers)
    if errors:
        raise domain.AnswersInvalid(errors)
    # One rating per session: a second answer (another tab, a replayed POST, another link for the same
    # session, staff having entered it) cannot insert.
    feedback = _store_feedback(rating_id_for(request.client_id, request.session_number), request.org_id, request.clinic_id, request.client_id,
                               request.counselor_id, request.session_number, request.instrument_id, answers,
                               None, publish)
    FeedbackRequest.objects(id=request.id).update_one(set__answered_at=feedback.created_at)
    return feedback


def _store_feedback(feedback_id: str, org_id: str, clinic_id: str, client_id: str, counselor_id: str,
                    session_number: int, instrument_id: str, answers: dict, submitted_by: str | None,
                    publish: Publish) -> FeedbackSubmission:
    event = make_event(Topic.FEEDBACK_SUBMITTED, {
        "feedback_id": feedback_id, "client_id": client_id, "counselor_id": counselor_id,
        "session_number": session_number, "instrument_id": instrument_id, "answers": dict(answers),
    }, org_id=org_id, clinic_id=clinic_id, producer=PRODUCER)
    feedback = FeedbackSubmission(
        id=feedback_id, org_id=org_id, clinic_id=clinic_id, client_id=client_id, counselor_id=counselor_id,
        session_number=session_number, instrument_id=instrument_id, answers=dict(answers),
        submitted_by=submitted_by, pending_events=[outbox_entry(event, key=client_id)])
    _insert_answer(feedback)
    publish_or_defer(feedback, publish)
    return feedback


def _insert_answer(document: me.Document) -> None:
    try:
        document.save(force_insert=True)
    except (me.NotUniqueError, DuplicateKeyError):
        raise domain.LinkClosed("answered") from None


def answer_exit_interview(cmd: AnswerExitInterview, publish: Publish, clock: Clock) -> ExitInterview:
    request = queries.open_request(cmd.request_id, "exit_interview", clock())
    values, errors = domain.validate_exit_interview(cmd.answers)
    if errors:
        raise domain.AnswersInvalid(errors)
    comment = values.pop("comment")
    # The comment is the client's own words: it stays here, the event carries the scale and yes/no answers.
    event = make_event(Topic.EXIT_INTERVIEW_SUBMITTED, {
        "exit_interview_id": request.id, "client_id": request.client_id, "counselor_id": request.counselor_id,
        "session_number": request.session_number, **values,
    }, org_id=request.org_id, clinic_id=request.clinic_id, producer=PRODUCER)
    interview = ExitInterview(
        id=request.id, org_id=request.org_id, clinic_id=request.clinic_id, client_id=request.client_id,
        counselor_id=request.counselor_id, session_number=request.session_number, comment=comment, **values,
        pending_events=[outbox_entry(event, key=request.client_id)])
    _insert_answer(interview)
    FeedbackRequest.objects(id=request.id).update_one(set__answered_at=interview.created_at)
    publish_or_defer(interview, publish)
    return interview


# --- events from other services ---

def handle_referral_decided(event: Event, publish: Publish) -> None:
    """An accepted referral moves the client to the chosen counselor, once per decision event, unless the
    client was moved since the referral was made (declined and superseded referrals change nothing)."""
    p = event.payload
    if p.decision != "accepted":
        return
    if not p.new_counselor_id:
        raise InvalidEvent("accepted referral without new_counselor_id")
    client = Client.objects(id=p.client_id, org_id=event.org_id).first()
    if client is None or client.clinic_id != event.clinic_id:
        raise CrossTenantEvent("no such client in the event's organisation and clinic")
    try:
        domain.check_assignment(client.org_id, client.clinic_id,
                                _counselor_facts(Staff.objects(id=p.new_counselor_id).first()))
    except domain.Refused as exc:
        raise InvalidEvent(f"new_counselor_id: {exc.message}") from None
    if domain.referral_is_stale(p.previous_counselor_id, client.counselor_id, event.event_id in client.assignment_ids):
        # Decided on stale facts: the client was moved since (another referral, the front desk) and referral
        # had not heard of it yet when the supervisor accepted (it refuses such an accept itself otherwise).
        # Moving the client again would undo the newer assignment, so the decision is consumed without
        # effect: not dead-lettered (an operator could only discard it, and a replay would land there
        # again) and not retried (it can never become right). Referral learns of the newer assignment from
        # client.assigned and closes what is still open; its page shows the accepted referral not carried out.
        # Checked after the event's own content, so a foreign counselor is dead-lettered, stale or not.
        log.warning("referral %s not carried out: decided for counselor %s, the client's is %s",
                    p.referral_id, p.previous_counselor_id, client.counselor_id)
        return
    # The assignment id is the event id: a redelivery finds the assignment recorded and adds nothing.
    _assign(client, p.new_counselor_id, assigned_by=p.decided_by, assignment_id=event.event_id,
            referral_id=p.referral_id, correlation_id=event.correlation_id, publish=publish)


COMMAND_HANDLERS: dict[type, Callable[..., Any]] = {
    SeedOrganisation: seed_organisation,
    CreateClinic: create_clinic,
    UpdateClinic: update_clinic,
    CreateStaff: create_staff,
    UpdateStaff: update_staff,
    SignOut: sign_out,
    RegisterClient: register_client,
    AssignCounselor: assign_counselor,
    RecordSession: record_session,
    CreateFeedbackRequest: create_feedback_request,
    RecordContactConsent: record_contact_consent,
    SendLink: send_link,
    SendDueReminders: send_due_reminders,
    SubmitFeedback: submit_feedback,
    AnswerFeedbackLink: answer_feedback_link,
    AnswerExitInterview: answer_exit_interview,
}

EVENT_HANDLERS = {
    Topic.REFERRAL_DECIDED.value: handle_referral_decided,
}
