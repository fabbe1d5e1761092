"""JSON entrypoints under /api/: validate input, build a command, hand it to the handlers, render the result."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

from flask import g, request
from flask_smorest import Blueprint, abort

from services.common import audit
from services.common.auth import issue_token
from services.common.ratelimit import too_many
from services.common.schemas import QuerySetPage
from services.common.web.app import command_bus
from services.common.web.identity import caller, guard, settings

from services.intake import domain, queries

from services.intake.adapters import links
from services.intake.adapters.accounts import SignInAmbiguous, record_throttled, sign_in, throttle
from services.intake.commands import (AssignCounselor, CreateClinic, CreateFeedbackRequest, CreateStaff, RecordSession,
                       RegisterClient, SignOut, SubmitFeedback, UpdateClinic, UpdateStaff)
from services.intake.adapters.models import FeedbackRequest
from services.intake.entrypoints.schemas import (AssignmentRequestSchema, ClientQuerySchema, ClientSchema, ClinicSchema, ClinicUpdateSchema,
                      CounselorProfileSchema, CounselorQuerySchema, CounselorSchema, ExitInterviewSchema,
                      FeedbackQuerySchema, FeedbackRequestSchema, FeedbackSchema, IdentitySchema, PeopleQuerySchema,
                      PeopleSchema, SessionSchema, StaffSchema, StaffUpdateSchema, TokenRequestSchema, TokenSchema)

auth = Blueprint("auth", __name__, url_prefix="/api/auth", description="Sign-in for API callers")
clinics = Blueprint("clinics", __name__, url_prefix="/api/clinics", description="Clinics of the organisation")
staff = Blueprint("staff", __name__, url_prefix="/api/staff", description="Staff and their roles (admin)")
counselors = Blueprint("counselors", __name__, url_prefix="/api/counselors", description="Counselor directory")
clients = Blueprint("clients", __name__, url_prefix="/api/clients",
                    description="Clients: registration (intake), assignment, sessions, feedback links")
feedback = Blueprint("feedback", __name__, url_prefix="/api/feedback", description="Session feedback")
people = Blueprint("people", __name__, url_prefix="/api/people",
                   description="Names for the ids other services' pages show (people.js)")
BLUEPRINTS = (auth, clinics, staff, counselors, clients, feedback, people)

ANY_STAFF = domain.STAFF_ROLES


@contextmanager
def domain_errors():
    """Rule violations as HTTP answers: 404 for what the caller cannot see, 422 naming the field."""
    try:
        yield
    except domain.NotFound:
        abort(404)
    except domain.Forbidden as exc:
        abort(403, errors={"json": {exc.field: [exc.message]}})
    except domain.Conflict as exc:
        abort(409, errors={"json": {exc.field: [f"{exc.message} ({exc.existing})"]}})
    except domain.Refused as exc:
        abort(422, errors={"json": {exc.field: [exc.message]}})
    except domain.AnswersInvalid as exc:
        abort(422, errors={"json": {"answers": {k: [v] for k, v in exc.errors.items()}}})


def run(cmd):
    with domain_errors():
        return command_bus().handle(cmd)


# --- auth ---

@auth.post("/token")
@auth.arguments(TokenRequestSchema)
@auth.response(200, TokenSchema)
@auth.alt_response(401, description="Unknown e-mail or wrong password")
@auth.alt_response(409, description="The e-mail opens accounts of several organisations: send org_id")
@auth.alt_response(429, description="Too many attempts for this account or address; see Retry-After")
def create_token(data):
    """Exchange a staff member's e-mail and password for a bearer token (JWT) every service accepts."""
    decision = throttle(data["email"], request.remote_addr)
    if not decision.allowed:
        record_throttled(data["email"], g.get("request_id"))
        return too_many(decision)
    try:
        identity = sign_in(data["email"], data["password"], g.get("request_id"), data["org_id"])
    except SignInAmbiguous:
        abort(409, errors={"json": {"org_id": [
            "This e-mail and password open accounts of more than one organisation: name the organisation."]}})
    if identity is None:
        abort(401, message="Unknown e-mail or wrong password.")
    s = settings()
    return {"token": issue_token(s, identity), "token_type": "Bearer", "expires_in": s.session_idle_minutes * 60}


@auth.post("/signout")
@guard()
@auth.response(204)
def sign_out():
    """End every session of the caller, on every device: their tokens stop working in every service."""
    run(SignOut(caller()))


@auth.get("/me")
@guard()
@auth.response(200, IdentitySchema)
def me():
    return caller()


# --- clinics ---

@clinics.get("")
@guard(*ANY_STAFF)
@clinics.response(200, ClinicSchema(many=True))
@clinics.paginate(QuerySetPage)
def list_clinics():
    return queries.clinics(caller())


@clinics.post("")
@guard("admin")
@clinics.arguments(ClinicSchema)
@clinics.response(201, ClinicSchema)
def create_clinic(data):
    return run(CreateClinic(caller(), **data))


@clinics.patch("/<clinic_id>")
@guard("admin")
@clinics.arguments(ClinicUpdateSchema)
@clinics.response(200, ClinicSchema)
def update_clinic(data, clinic_id):
    """Rename a clinic or choose the instrument its clients answer."""
    return run(UpdateClinic(caller(), clinic_id, data))


# --- staff ---

@staff.get("")
@guard("admin", "supervisor")
@staff.response(200, StaffSchema(many=True))
@staff.paginate(QuerySetPage)
def list_staff():
    return queries.staff_members(caller())


@staff.post("")
@guard("admin")
@staff.arguments(StaffSchema)
@staff.response(201, StaffSchema)
def create_staff(data):
    """Add a staff member (admins); publishes `staff.updated` (and `counselor.updated` for counselors)."""
    return run(CreateStaff(caller(), **data))


@staff.get("/<staff_id>")
@guard("admin", "supervisor")
@staff.response(200, StaffSchema)
def get_staff(staff_id):
    with domain_errors():
        return queries.scoped_staff(caller(), staff_id)


@staff.patch("/<staff_id>")
@guard("admin", "supervisor")
@staff.arguments(StaffUpdateSchema)
@staff.response(200, StaffSchema)
def update_staff(data, staff_id):
    """Change role, clinics, supervisor, password or deactivate (admins; supervisors change a counselor's
    name and directory entry only); publishes `staff.updated`. A new role, clinics or password, or a
    deactivation, ends the member's sessions."""
    return run(UpdateStaff(caller(), staff_id, data))


# --- counselor directory ---

@counselors.get("")
@guard(*ANY_STAFF)
@counselors.arguments(CounselorQuerySchema, location="query")
@counselors.response(200, CounselorSchema(many=True))
@counselors.paginate()
def list_counselors(query, pagination_parameters):
    """The directory, filtered by clinic, specialty, language, modality and whether accepting clients."""
    found = queries.search_counselors(caller(), **query)
    pagination_parameters.item_count = found.count()
    page = found.skip(pagination_parameters.first_item).limit(pagination_parameters.page_size)
    return queries.counselor_views(list(page))


@counselors.get("/<counselor_id>")
@guard(*ANY_STAFF)
@counselors.response(200, CounselorSchema)
def get_counselor(counselor_id):
    found = queries.counselor_views(list(queries.search_counselors(caller()).filter(id=counselor_id)))
    return found[0] if found else abort(404)


@counselors.patch("/<counselor_id>")
@guard(*domain.DIRECTORY_EDITORS)
@counselors.arguments(CounselorProfileSchema)
@counselors.response(200, CounselorSchema)
def update_counselor(data, counselor_id):
    """Change a counselor's directory profile; publishes `counselor.updated`."""
    counselor = run(UpdateStaff(caller(), counselor_id, {"counselor": data}))
    return queries.counselor_views([counselor])[0]


# --- clients ---

@clients.get("")
@guard(*ANY_STAFF)
@clients.arguments(ClientQuerySchema, location="query")
@clients.response(200, ClientSchema(many=True))
@clients.paginate(QuerySetPage)
def list_clients(query):
    """Clients of the caller's clinics, newest first."""
    return queries.clients(caller(), **query)


@clients.post("")
@guard(*domain.CLIENT_WRITERS)
@clients.arguments(ClientSchema)
@clients.response(201, ClientSchema)
def register_client(data):
    """Register a client (the intake); publishes `intake.submitted` with ids and codes only, and
    `client.assigned` when a counselor is chosen at once."""
    return run(RegisterClient(caller(), **data))


@clients.get("/<client_id>")
@guard(*ANY_STAFF)
@clients.response(200, ClientSchema)
def get_client(client_id):
    with domain_errors():
        return queries.scoped_client(caller(), client_id)


@clients.post("/<client_id>/assignment")
@guard(*domain.CLIENT_WRITERS)
@clients.arguments(AssignmentRequestSchema)
@clients.response(200, ClientSchema)
def assign_counselor(data, client_id):
    """Give the client a counselor (recorded with who and when); publishes `client.assigned`."""
    return run(AssignCounselor(caller(), client_id, data["counselor_id"]))


@clients.get("/<client_id>/sessions")
@guard(*ANY_STAFF)
@clients.response(200, SessionSchema(many=True))
@clients.paginate(QuerySetPage)
def list_sessions(client_id):
    with domain_errors():
        return queries.sessions_of(queries.scoped_client(caller(), client_id))


@clients.post("/<client_id>/sessions")
@guard(*ANY_STAFF)
@clients.arguments(SessionSchema)
@clients.response(201, SessionSchema)
def record_session(data, client_id):
    """Record that a session took place; the number defaults to the next one."""
    return run(RecordSession(caller(), client_id, **data))


@clients.get("/<client_id>/feedback-requests")
@guard(*ANY_STAFF)
@clients.response(200, FeedbackRequestSchema(many=True))
def list_feedback_requests(client_id):
    with domain_errors():
        client = queries.scoped_client(caller(), client_id)
    return [with_url(r) for r in queries.feedback_requests_of(client)]


@clients.post("/<client_id>/feedback-requests")
@guard(*ANY_STAFF)
@clients.arguments(FeedbackRequestSchema)
@clients.response(201, FeedbackRequestSchema)
def create_feedback_request(data, client_id):
    """A signed, single-use, expiring link for the client: session feedback or the exit interview."""
    request = run(CreateFeedbackRequest(caller(), client_id, data["session_id"],
                                        data["kind"], timedelta(hours=data["valid_for_hours"]),
                                        reissue_reason=data["reissue_reason"], reissue_note=data["reissue_note"]))
    return with_url(request)


@clients.get("/<client_id>/exit-interviews")
@guard(*ANY_STAFF)
@clients.response(200, ExitInterviewSchema(many=True))
def list_exit_interviews(client_id):
    identity = caller()
    with domain_errors():
        return list(queries.exit_interviews(identity, queries.scoped_client(identity, client_id)))


def link_url(request: FeedbackRequest) -> str:
    return links.url(settings().intake_url, settings().jwt_secret, request.kind, request.id, request.expires_at)


def with_url(request: FeedbackRequest) -> dict:
    fields = {name: getattr(request, name, None) for name in FeedbackRequestSchema().dump_fields}
    return {**fields, "url": link_url(request)}


# --- feedback entered by staff ---

@feedback.post("")
@guard(*ANY_STAFF)
@feedback.arguments(FeedbackSchema)
@feedback.response(201, FeedbackSchema)
def submit_feedback(data):
    """Record a client's session rating entered by staff; publishes `feedback.submitted`.
    Counselor and instrument default to the client's counselor and the clinic's instrument."""
    return run(SubmitFeedback(caller(), **data))


@feedback.get("")
@guard(*ANY_STAFF)
@feedback.arguments(FeedbackQuerySchema, location="query")
@feedback.response(200, FeedbackSchema(many=True))
@feedback.paginate(QuerySetPage)
def list_feedback(query):
    return queries.feedback(caller(), query["client_id"])


@feedback.get("/<feedback_id>")
@guard(*ANY_STAFF)
@feedback.response(200, FeedbackSchema)
def get_feedback(feedback_id):
    return queries.feedback_entry(caller(), feedback_id) or abort(404)


# --- names for other services' pages ---

# Ids per kind in one look-up: a page shows far fewer; more is a caller to refuse, not a query to run.
MAX_PEOPLE_IDS = 200


@people.get("")
@guard(*ANY_STAFF)
@people.arguments(PeopleQuerySchema, location="query")
@people.response(200, PeopleSchema)
@people.alt_response(400, description="More than 200 ids of one kind")
def list_people(query):
    """Display names for client, staff and clinic ids (`?client=<id>&client=<id>&staff=<id>&clinic=<id>`),
    under the caller's own permissions: ids the caller may not see, or that do not exist, are simply absent.
    The clients named are recorded in the audit trail as the read's subjects."""
    for kind in ("client", "staff", "clinic"):
        if len(query[kind]) > MAX_PEOPLE_IDS:
            abort(400, errors={"query": {kind: [f"At most {MAX_PEOPLE_IDS} ids per request."]}})
    found = queries.people_names(caller(), query["client"], query["staff"], query["clinic"])
    audit.reads(*found["clients"])
    return found
