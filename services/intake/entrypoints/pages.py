"""Browser pages: sign-in for staff, the front desk, the directory, and the clients' feedback pages.

Server-rendered and usable without JavaScript. Forms post back to the same URL; a form with errors is shown
again with each message next to its field (aria-invalid, aria-describedby).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlsplit

import segno
from flask import Blueprint, g, redirect, render_template, request, url_for
from markupsafe import Markup
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from services.common import audit, ratelimit
from services.common.events import CONCERNS, MODALITIES, URGENCIES
from services.common.web.app import command_bus
from services.common.web.identity import clear_session_cookie, require_page_identity, set_session_cookie, settings, signin_redirect

from services.intake import domain, queries

from services.intake.adapters import links
from services.intake.adapters.accounts import SignInAmbiguous, record_throttled, sign_in, throttle
from services.intake.commands import (AnswerExitInterview, AnswerFeedbackLink, AssignCounselor, CreateFeedbackRequest,
                                      RecordContactConsent, RecordSession, RegisterClient, SendLink, SignOut)
from services.intake.entrypoints.api import link_url
from services.intake.entrypoints.schemas import ClientSchema, CounselorQuerySchema, SessionSchema

pages = Blueprint("intake_pages", __name__, template_folder="templates")

LINK_VALID_FOR = timedelta(hours=72)
# Messages shown after a redirect (post/redirect/get), by code, so no text travels in the URL.
NOTICES = {"registered": "Client registered.", "assigned": "Counselor assigned.",
           "session": "Session recorded.", "consent": "Consent recorded.",
           "link": "Link created: send it to the client, show its QR code, or copy it.",
           "sent": "Link sent to the client."}


def _vocabulary() -> dict:
    return {"concerns": CONCERNS, "modalities": MODALITIES, "urgencies": URGENCIES, "genders": domain.GENDERS,
            "days": domain.DAYS, "times": domain.TIMES}


# --- sign-in ---

def _safe_next(target: str | None) -> str:
    """Only back to a Rapport page: a relative path or one of the configured service URLs."""
    if not target:
        return url_for("intake_pages.home")
    s = settings()
    allowed = {urlsplit(u).netloc for u in (s.intake_url, s.scoring_url, s.referral_url, s.notify_url)}
    parts = urlsplit(target)
    if (not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//")) or \
            (parts.scheme in ("http", "https") and parts.netloc in allowed):
        return target
    return url_for("intake_pages.home")


@pages.get("/signin")
def signin_form():
    return render_template("signin.html", next=request.args.get("next", ""), error=None, email="", ask_org=False)


@pages.post("/signin")
def signin():
    email, target = request.form.get("email", ""), request.form.get("next", "")
    org_id = request.form.get("org_id") or None
    decision = throttle(email, request.remote_addr)
    if not decision.allowed:
        record_throttled(email, g.get("request_id"))
        minutes = -(-decision.retry_after_s // 60)
        return render_template("signin.html", next=target, email=email, ask_org=bool(org_id),
                               error=f"Too many attempts. Please wait {minutes} minutes and try again."), \
            429, {"Retry-After": str(decision.retry_after_s)}
    try:
        identity = sign_in(email, request.form.get("password", ""), g.get("request_id"), org_id)
    except SignInAmbiguous:
        return render_template("signin.html", next=target, email=email, ask_org=True,
                               error="This e-mail belongs to more than one organisation: enter the "
                                     "organisation's id as well."), 409
    if identity is None:
        return render_template("signin.html", next=target, email=email, ask_org=bool(org_id),
                               error="That e-mail and password do not match an active account."), 401
    return set_session_cookie(redirect(_safe_next(target), 303), identity)


@pages.post("/signout")
def signout():
    """Sign out: the session ends here and in every service, on every device of this staff member."""
    identity = require_page_identity()
    if identity is None:
        return clear_session_cookie(signin_redirect())
    command_bus().handle(SignOut(identity))
    return clear_session_cookie(redirect(url_for("intake_pages.signin_form"), 303))


# --- front desk ---

@pages.get("/")
def home():
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    today, recent = queries.front_desk_day(identity, date.today())
    audit.reads(*(c.id for c in today + recent))
    return render_template("home.html", today=today, recent=recent,
                           counselor_names=queries.staff_names(identity, (c.counselor_id for c in today + recent)),
                           clinic_names=queries.clinic_names(identity), notice=NOTICES.get(request.args.get("done")))


@pages.route("/clients/new", methods=["GET", "POST"])
def new_client():
    identity = require_page_identity(*domain.CLIENT_WRITERS)
    if identity is None:
        return signin_redirect()
    clinics = list(queries.clinics(identity))
    form, errors = request.form, {}
    if request.method == "POST":
        try:
            data = ClientSchema().load(_client_input(form))
            client = command_bus().handle(RegisterClient(identity, **data))
            return redirect(url_for("intake_pages.client_page", client_id=client.id, done="registered"), 303)
        except ValidationError as exc:
            errors = _flatten(exc.messages)
        except domain.Refused as exc:
            errors = {exc.field: exc.message}
    elif len(clinics) == 1:
        form = MultiDict({"clinic_id": clinics[0].id})
    counselors = queries.counselor_views(list(queries.search_counselors(identity, accepting=True)))
    return render_template("client_new.html", form=form, errors=errors, clinics=clinics, counselors=counselors,
                           sms_enabled=bool(settings().sms_webhook_url), **_vocabulary()), 422 if errors else 200


def _client_input(form: MultiDict) -> dict:
    """The form's flat fields as the API's JSON shape; empty inputs are left out (or None)."""
    def text(name):
        return form.get(name, "").strip() or None
    data = {"clinic_id": text("clinic_id"), "first_name": text("first_name"), "last_name": text("last_name"),
            "date_of_birth": text("date_of_birth"), "email": text("email"), "phone": text("phone"),
            "concerns": form.getlist("concerns"), "urgency": text("urgency") or "routine", "notes": text("notes"),
            "counselor_id": text("counselor_id"),
            "contact_consent": {"email": form.get("consent_email") == "yes", "sms": form.get("consent_sms") == "yes"},
            "preferences": {"language": text("language"), "modality": text("modality") or "either",
                            "counselor_gender": text("counselor_gender"), "days": form.getlist("days"),
                            "times": form.getlist("times")}}
    # Required fields left empty are absent, so the schema says "required" rather than "not a string".
    return {k: v for k, v in data.items() if v is not None or k not in ("clinic_id", "first_name", "last_name")}


def _flatten(messages, prefix: str = "") -> dict[str, str]:
    """Marshmallow's nested errors as {form field: first message}; preferences' fields are top-level inputs."""
    flat = {}
    for key, value in messages.items():
        name = str(key) if prefix in ("", "preferences") else f"{prefix}.{key}"
        if isinstance(value, dict) and not all(isinstance(k, int) for k in value):
            flat.update(_flatten(value, name))
        elif isinstance(value, dict):  # errors of list items: one message for the list
            flat[name] = next(iter(value.values()))[0]
        else:
            flat[name] = value[0]
    return flat


# --- a client ---

@pages.get("/clients/<client_id>")
def client_page(client_id, errors=None, status=200):
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    try:
        client = queries.scoped_client(identity, client_id)
    except domain.NotFound:
        former = queries.former_client(identity, client_id)
        if former is None:
            return render_template("not_found.html"), 404
        # A link from the counselor's own earlier alerts or charts: say where the client went, not "not found".
        moved = next((a for a in reversed(former.assignments) if a.counselor_id == former.counselor_id), None)
        return render_template("client_moved.html", client=former, moved=moved,
                               counselor_names=queries.staff_names(identity, [former.counselor_id]))
    sessions = list(queries.sessions_of(client))
    requests = queries.feedback_requests_of(client)
    now = datetime.now(timezone.utc)
    link_rows = [{"request": r, "state": domain.link_state(r.expires_at, r.answered_at is not None, now)}
                 for r in requests]
    consent = client.consents[-1] if client.consents else None
    counselors = queries.assignable_counselors(identity, client)
    named = [client.counselor_id, *(a.counselor_id for a in client.assignments), *(s.counselor_id for s in sessions)]
    return render_template(
        "client.html", client=client, sessions=sessions, links=link_rows, counselors=counselors,
        rated=queries.session_raters(client),
        # Counselors of the record and who recorded the consent: one look-up of the staff named.
        staff_names=queries.staff_names(identity, [*named, *([consent.recorded_by] if consent else [])]),
        exit_interviews=list(queries.exit_interviews(identity, client)), clinic_names=queries.clinic_names(identity),
        errors=errors or {}, notice=NOTICES.get(request.args.get("done")), today=date.today().isoformat(),
        can_write=identity.role in domain.CLIENT_WRITERS, consent=consent,
        sms_enabled=bool(settings().sms_webhook_url)), status


def _client_action(client_id, roles, build, done):
    identity = require_page_identity(*roles)
    if identity is None:
        return signin_redirect()
    try:
        command_bus().handle(build(identity))
    except domain.NotFound:
        return render_template("not_found.html"), 404
    except domain.Refused as exc:
        return client_page(client_id, errors={exc.field: exc.message}, status=422)
    except ValidationError as exc:
        return client_page(client_id, errors=_flatten(exc.messages), status=422)
    return redirect(url_for("intake_pages.client_page", client_id=client_id, done=done), 303)


@pages.post("/clients/<client_id>/assignment")
def assign(client_id):
    counselor_id = request.form.get("counselor_id", "")
    if not counselor_id:
        return client_page(client_id, errors={"counselor_id": "Choose a counselor."}, status=422)
    return _client_action(client_id, domain.CLIENT_WRITERS,
                          lambda identity: AssignCounselor(identity, client_id, counselor_id), "assigned")


@pages.post("/clients/<client_id>/sessions")
def record_session(client_id):
    def build(identity):
        data = SessionSchema().load({"held_on": request.form.get("held_on", "")})
        return RecordSession(identity, client_id, **data)
    return _client_action(client_id, domain.STAFF_ROLES, build, "session")


@pages.post("/clients/<client_id>/consent")
def record_consent(client_id):
    return _client_action(client_id, domain.CLIENT_WRITERS, lambda identity: RecordContactConsent(
        identity, client_id, email=request.form.get("consent_email") == "yes",
        sms=request.form.get("consent_sms") == "yes"), "consent")


# --- a client's links: made, shown as a QR code, copied, sent ---

@pages.post("/clients/<client_id>/links")
def create_link(client_id):
    """A new link, then its page. For a session the client answered already the form asks why first."""
    identity = require_page_identity(*domain.STAFF_ROLES)
    if identity is None:
        return signin_redirect()
    form = request.form
    kind = form.get("kind") if form.get("kind") in links.KINDS else "feedback"
    try:
        created = command_bus().handle(CreateFeedbackRequest(
            identity, client_id, form.get("session_id", ""), kind, LINK_VALID_FOR,
            reissue_reason=form.get("reissue_reason") or None, reissue_note=form.get("reissue_note") or None))
    except domain.NotFound:
        return render_template("not_found.html"), 404
    except domain.Refused as exc:
        if exc.field not in ("reissue_reason", "reissue_note"):
            return client_page(client_id, errors={exc.field: exc.message}, status=422)
        client = queries.scoped_client(identity, client_id)
        session = next(s for s in queries.sessions_of(client) if s.id == form.get("session_id"))
        # Asked for the first time, the page explains; a reason form sent back incomplete marks its field.
        errors = {exc.field: exc.message} if "reissue_reason" in form else {}
        return render_template("link_reissue.html", client=client, session=session, kind=kind, form=form,
                               reasons=domain.REISSUE_REASONS, errors=errors,
                               note_max=domain.REISSUE_NOTE_MAX), 422
    return redirect(url_for("intake_pages.link_page", request_id=created.id, done="link"), 303)


@pages.get("/links/<request_id>")
def link_page(request_id, errors=None, status=200):
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    try:
        link, client = queries.scoped_request(identity, request_id)
    except domain.NotFound:
        return render_template("not_found.html"), 404
    audit.reads(client.id)
    state = domain.link_state(link.expires_at, link.answered_at is not None, datetime.now(timezone.utc))
    url = link_url(link)
    # Drawn here as SVG markup (no script, no inline style): a tablet in the clinic shows it to the client.
    qr = Markup(segno.make(url, error="m").svg_inline(
        scale=6, omitsize=True, svgclass="qr-code", lineclass=None,
        title=f"QR code of the link for session {link.session_number}")) if state == "open" else None
    sms_enabled = bool(settings().sms_webhook_url)
    facts = queries.contact_facts(client)
    deliveries = queries.deliveries_of(link)
    return render_template(
        "link.html", client=client, link=link, state=state, url=url, qr=qr, deliveries=deliveries,
        sms_enabled=sms_enabled,
        refusals={c: domain.contact_refusal(c, facts, sms_enabled) for c in domain.CONTACT_CHANNELS},
        staff_names=queries.staff_names(identity, [link.created_by, *(d.sent_by for d in deliveries)]),
        reasons=domain.REISSUE_REASONS, errors=errors or {}, notice=NOTICES.get(request.args.get("done"))), status


@pages.post("/links/<request_id>/send")
def send_link(request_id):
    identity = require_page_identity(*domain.STAFF_ROLES)
    if identity is None:
        return signin_redirect()
    try:
        command_bus().handle(SendLink(identity, request_id, request.form.get("channel", "")))
    except domain.NotFound:
        return render_template("not_found.html"), 404
    except domain.Refused as exc:
        return link_page(request_id, errors={exc.field: exc.message}, status=422)
    return redirect(url_for("intake_pages.link_page", request_id=request_id, done="sent"), 303)


# --- directory ---

@pages.get("/counselors")
def directory():
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    raw = {k: v for k, v in request.args.items() if v}
    try:
        filters = CounselorQuerySchema().load(raw)
    except ValidationError as exc:
        filters, errors = {}, _flatten(exc.messages)
    else:
        errors = {}
    counselors = queries.counselor_views(list(queries.search_counselors(identity, **filters)))
    return render_template("directory.html", counselors=counselors, filters=raw, errors=errors,
                           clinics=list(queries.clinics(identity)), clinic_names=queries.clinic_names(identity),
                           **_vocabulary())


# --- the client's pages (no account: the signed link is the key) ---

# Requests to the clients' link pages per address in a window, across every process: a link is a long signed
# token no one guesses, but an address trying thousands is refused early. A clinic's tablet shared by the
# day's clients stays well below it.
LINK_REQUESTS_PER_ADDRESS, LINK_WINDOW_S = 120, 10 * 60


def _request_for(kind: str, token: str):
    """The open request behind a link, or the page to show instead (expired, answered, not a link, or too
    many requests from this address)."""
    decision = ratelimit.hit("link-address", request.remote_addr or "unknown", LINK_REQUESTS_PER_ADDRESS,
                             LINK_WINDOW_S)
    if not decision.allowed:
        return None, (render_template("link_closed.html", state="busy"), 429,
                      {"Retry-After": str(decision.retry_after_s)})
    try:
        request_id = links.verify(settings().jwt_secret, kind, token)
        return queries.open_request(request_id, kind, datetime.now(timezone.utc)), None
    except links.LinkExpired:
        return None, (render_template("link_closed.html", state="expired"), 410)
    except domain.LinkClosed as exc:
        return None, (render_template("link_closed.html", state=exc.state), 410)
    except (links.LinkInvalid, domain.NotFound):
        return None, (render_template("link_closed.html", state="unknown"), 404)


@pages.route("/f/<token>", methods=["GET", "POST"])
def feedback_form(token):
    feedback_request, closed = _request_for("feedback", token)
    if closed:
        return closed
    items = queries.questionnaire(feedback_request.org_id, feedback_request.instrument_id)
    errors = {}
    if request.method == "POST":
        answers = request.form.to_dict()
        try:
            command_bus().handle(AnswerFeedbackLink(feedback_request.id, answers))
            return render_template("thanks.html")
        except domain.AnswersInvalid as exc:
            errors = exc.errors
        except domain.LinkClosed as exc:
            return render_template("link_closed.html", state=exc.state), 410
    return render_template("feedback.html", items=items, answers=request.form, errors=errors), \
        422 if errors else 200


@pages.route("/x/<token>", methods=["GET", "POST"])
def exit_interview_form(token):
    exit_request, closed = _request_for("exit_interview", token)
    if closed:
        return closed
    errors = {}
    if request.method == "POST":
        try:
            command_bus().handle(AnswerExitInterview(exit_request.id, request.form.to_dict()))
            return render_template("thanks.html")
        except domain.AnswersInvalid as exc:
            errors = exc.errors
        except domain.LinkClosed as exc:
            return render_template("link_closed.html", state=exc.state), 410
    return render_template("exit_interview.html", questions=domain.EXIT_QUESTIONS, yes_no=domain.EXIT_YES_NO,
                           scale=range(domain.EXIT_SCALE[0], domain.EXIT_SCALE[1] + 1), answers=request.form,
                           errors=errors, comment_max=domain.EXIT_COMMENT_MAX), 422 if errors else 200
