"""Intake's command handlers: write the record with its event in one document, then publish it."""
from __future__ import annotations

from typing import Any, Callable

from services.common.events import Topic, make_event, new_id
from services.common.outbox import Publish, outbox_entry, publish_or_defer

from .commands import SubmitFeedback, SubmitIntake
from .models import ClientDetails, FeedbackSubmission, Intake

PRODUCER = "intake"


def submit_intake(cmd: SubmitIntake, publish: Publish) -> Intake:
    intake_id, client_id = new_id(), new_id()
    # The event names the client by id only; name, birth date, contact and notes stay in this service.
    event = make_event(Topic.INTAKE_SUBMITTED, {
        "intake_id": intake_id, "client_id": client_id, "concerns": list(cmd.concerns),
        "preferences": dict(cmd.preferences), "urgency": cmd.urgency,
        "assigned_counselor_id": cmd.assigned_counselor_id,
    }, org_id=cmd.org_id, clinic_id=cmd.clinic_id, producer=PRODUCER)
    intake = Intake(
        id=intake_id, org_id=cmd.org_id, clinic_id=cmd.clinic_id, client_id=client_id,
        client=ClientDetails(first_name=cmd.first_name, last_name=cmd.last_name,
                             date_of_birth=cmd.date_of_birth, email=cmd.email, phone=cmd.phone),
        concerns=list(cmd.concerns), preferences=dict(cmd.preferences), urgency=cmd.urgency,
        notes=cmd.notes, assigned_counselor_id=cmd.assigned_counselor_id,
        pending_events=[outbox_entry(event, key=client_id)],
    )
    intake.save(force_insert=True)
    publish_or_defer(intake, publish)
    return intake


def submit_feedback(cmd: SubmitFeedback, publish: Publish) -> FeedbackSubmission:
    feedback_id = new_id()
    event = make_event(Topic.FEEDBACK_SUBMITTED, {
        "feedback_id": feedback_id, "client_id": cmd.client_id, "counselor_id": cmd.counselor_id,
        "session_number": cmd.session_number, "instrument_id": cmd.instrument_id,
        "answers": dict(cmd.answers),
    }, org_id=cmd.org_id, clinic_id=cmd.clinic_id, producer=PRODUCER)
    feedback = FeedbackSubmission(
        id=feedback_id, org_id=cmd.org_id, clinic_id=cmd.clinic_id, client_id=cmd.client_id,
        counselor_id=cmd.counselor_id, session_number=cmd.session_number,
        instrument_id=cmd.instrument_id, answers=dict(cmd.answers),
        pending_events=[outbox_entry(event, key=cmd.client_id)],
    )
    feedback.save(force_insert=True)
    publish_or_defer(feedback, publish)
    return feedback


COMMAND_HANDLERS: dict[type, Callable[[Any, Publish], Any]] = {
    SubmitIntake: submit_intake,
    SubmitFeedback: submit_feedback,
}


def handle(cmd: Any, publish: Publish) -> Any:
    return COMMAND_HANDLERS[type(cmd)](cmd, publish)
