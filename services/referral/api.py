from __future__ import annotations

from flask import abort
from flask_smorest import Blueprint

from .models import IntakeView
from .schemas import IntakeViewSchema

intakes = Blueprint("intakes", __name__, url_prefix="/api/intakes",
                    description="Intakes as referral received them from intake.submitted")


@intakes.get("/<intake_id>")
@intakes.response(200, IntakeViewSchema)
def get_intake(intake_id):
    return IntakeView.objects(id=intake_id).first() or abort(404)
