"""HTTP entrypoints: validate input, build a command, hand it to the handlers, render the result."""
from __future__ import annotations

from flask import abort
from flask_smorest import Blueprint

from services.common.web import kafka_ext

from . import handlers
from .commands import SubmitFeedback, SubmitIntake
from .models import FeedbackSubmission, Intake
from .schemas import FeedbackSchema, IntakeSchema

intakes = Blueprint("intakes", __name__, url_prefix="/api/intakes", description="Client registration")
feedback = Blueprint("feedback", __name__, url_prefix="/api/feedback", description="Session feedback")


@intakes.post("")
@intakes.arguments(IntakeSchema)
@intakes.response(201, IntakeSchema)
def create_intake(data):
    """Register a client; publishes `intake.submitted` (ids and codes only)."""
    client = data.pop("client")
    return handlers.handle(SubmitIntake(**data, **client), kafka_ext.send)


@intakes.get("/<intake_id>")
@intakes.response(200, IntakeSchema)
def get_intake(intake_id):
    return Intake.objects(id=intake_id).first() or abort(404)


@feedback.post("")
@feedback.arguments(FeedbackSchema)
@feedback.response(201, FeedbackSchema)
def create_feedback(data):
    """Record a client's rating of a session; publishes `feedback.submitted`."""
    return handlers.handle(SubmitFeedback(**data), kafka_ext.send)


@feedback.get("/<feedback_id>")
@feedback.response(200, FeedbackSchema)
def get_feedback(feedback_id):
    return FeedbackSubmission.objects(id=feedback_id).first() or abort(404)
