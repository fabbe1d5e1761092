"""Administration pages: the admin home, staff (add, edit roles, clinics and the directory entry,
deactivate, reset a password), clinics, and the audit trail of all four services.

Every change goes through the same commands as the JSON API (CreateStaff, UpdateStaff, CreateClinic,
UpdateClinic), so the pages cannot do more than the API allows: a supervisor sees the staff of their clinics
and edits a counselor's name and directory entry; accounts, clinics and the audit trail are an
administrator's. Forms post back to their page; a refused form is shown again with the message next to its
field, a done one redirects (post/redirect/get) with a notice code.
"""
from __future__ import annotations

import re

from flask import Blueprint, redirect, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from services.common.auth import ROLES
from services.common.events import CONCERNS, MODALITIES
from services.common.instruments import instrument_definitions
from services.common.web.app import command_bus
from services.common.web.identity import require_page_identity, signin_redirect

from services.intake import domain, queries
from services.intake.adapters.accounts import MIN_PASSWORD_LENGTH
from services.intake.commands import CreateClinic, CreateStaff, UpdateClinic, UpdateStaff
from services.intake.entrypoints.pages import _flatten
from services.intake.entrypoints.schemas import (ClinicSchema, ClinicUpdateSchema, CounselorProfileSchema,
                                                 StaffSchema, StaffUpdateSchema)

admin_pages = Blueprint("intake_admin", __name__, template_folder="templates")

OVERSEERS = ("admin", "supervisor")
NOTICES = {
    "added": "Staff member added.", "saved": "Changes saved.",
    "deactivated": "Deactivated: their sessions have ended and they can no longer sign in.",
    "reactivated": "Reactivated: they can sign in again.",
    "password": "Password set. Every session they had open has ended; give them the new password in person.",
    "clinic_added": "Clinic added.", "clinic_saved": "Clinic saved.",
}
# A supervisor's form sends only what they may change (domain.SUPERVISOR_EDITABLE): the account fields they
# see are read-only, and sending them unchanged would still be refused as a change.
ACCOUNT_FIELDS = ("display_name", "role", "clinic_ids", "supervisor_id")


def _vocabulary() -> dict:
    return {"roles": ROLES, "concerns": CONCERNS, "modalities": MODALITIES, "genders": domain.GENDERS,
            "min_password": MIN_PASSWORD_LENGTH}


def _not_found():
    return render_template("not_found.html"), 404


# --- pure form parsing (unit-tested) ---

def profile_input(form: MultiDict) -> dict:
    """The directory entry's fields as CounselorProfileSchema's JSON shape. Languages are typed as a list
    ("en, es"); an unticked checkbox is absent from a form, so the entry's booleans and lists are always sent."""
    data = {"specialties": form.getlist("specialties"), "modalities": form.getlist("modalities"),
            "languages": [code.lower() for code in re.split(r"[\s,;]+", form.get("languages", "")) if code],
            "gender": form.get("gender") or None, "style_notes": form.get("style_notes", "").strip() or None,
            "accepting_new_clients": form.get("accepting_new_clients") == "yes"}
    if form.get("weekly_capacity", "").strip():
        data["weekly_capacity"] = form["weekly_capacity"].strip()
    return data


def staff_input(form: MultiDict, *, new: bool) -> dict:
    """The account form as StaffSchema's (new) or StaffUpdateSchema's JSON shape. A new member's empty fields
    are left out, so that the schema says "required" rather than "not a string"; an edit sends every account
    field, so that emptying one is refused by name."""
    data = {"display_name": form.get("display_name", "").strip(), "role": form.get("role", ""),
            "clinic_ids": form.getlist("clinic_ids")}
    if new:
        data |= {"email": form.get("email", "").strip(), "password": form.get("password", "")}
        data = {k: v for k, v in data.items() if v not in ("", [])}
        if data.get("role") == "counselor":
            data["counselor"] = profile_input(form)
    data["supervisor_id"] = form.get("supervisor_id") or None
    return data


def form_errors(messages: dict) -> dict[str, str]:
    """Schema errors by form field: the directory entry's fields are top-level inputs of the staff forms."""
    return {name.removeprefix("counselor."): message for name, message in _flatten(messages).items()}


# --- the admin home ---

@admin_pages.get("/admin")
def admin_home():
    identity = require_page_identity(*OVERSEERS)
    if identity is None:
        return signin_redirect()
    return render_template("admin_home.html", clinics=list(queries.clinics(identity)))


# --- staff ---

@admin_pages.get("/staff")
def staff_list():
    identity = require_page_identity(*OVERSEERS)
    if identity is None:
        return signin_redirect()
    return render_template("admin_staff.html", staff=list(queries.staff_members(identity)),
                           clinic_names=queries.clinic_names(identity), notice=NOTICES.get(request.args.get("done")))


def _supervisors(identity) -> list:
    return [s for s in queries.staff_members(identity) if s.role in ("supervisor", "admin") and s.active]


@admin_pages.route("/staff/new", methods=["GET", "POST"])
def staff_new():
    identity = require_page_identity("admin")
    if identity is None:
        return signin_redirect()
    form, errors = request.form, {}
    if request.method == "POST":
        try:
            data = StaffSchema().load(staff_input(form, new=True))
            member = command_bus().handle(CreateStaff(identity, **data))
            return redirect(url_for("intake_admin.staff_edit", staff_id=member.id, done="added"), 303)
        except ValidationError as exc:
            errors = form_errors(exc.messages)
        except (domain.Refused, domain.Forbidden) as exc:
            errors = {exc.field: exc.message}
    else:
        form = MultiDict({"role": "counselor", "accepting_new_clients": "yes"})
    return render_template("admin_staff_new.html", form=form, errors=errors, clinics=list(queries.clinics(identity)),
                           supervisors=_supervisors(identity), **_vocabulary()), 422 if errors else 200


@admin_pages.route("/staff/<staff_id>", methods=["GET", "POST"])
def staff_edit(staff_id):
    """The account (admins) and, for a counselor, the directory entry (admins and supervisors) in one form."""
    identity, member, answer = _scoped_member(staff_id, *OVERSEERS)
    if answer is not None:
        return answer
    errors = {}
    if request.method == "POST":
        try:
            changes = _staff_changes(identity, member, request.form)
            command_bus().handle(UpdateStaff(identity, staff_id, changes))
            return redirect(url_for("intake_admin.staff_edit", staff_id=staff_id, done="saved"), 303)
        except ValidationError as exc:
            errors = form_errors(exc.messages)
        except (domain.Refused, domain.Forbidden) as exc:
            errors = {exc.field: exc.message}
    return _staff_page(identity, member, errors, request.form if errors else None)


def _scoped_member(staff_id: str, *roles: str):
    """The signed-in identity with one of roles and the staff member it may see, and None; or, instead, the
    answer to give: the sign-in page, or not found for a member outside the caller's scope."""
    identity = require_page_identity(*roles)
    if identity is None:
        return None, None, signin_redirect()
    try:
        return identity, queries.scoped_staff(identity, staff_id), None
    except domain.NotFound:
        return identity, None, _not_found()


def _staff_changes(identity, member, form: MultiDict) -> dict:
    if identity.role == "admin":
        changes = StaffUpdateSchema().load(staff_input(form, new=False))
    else:
        changes = StaffUpdateSchema().load({"display_name": form.get("display_name", "").strip()})
    # Only a form that showed the directory entry changes it: one without its fields (an unticked box and an
    # absent one look the same) must not empty it.
    if member.role == "counselor" and changes.get("role", "counselor") == "counselor" and "directory" in form:
        changes["counselor"] = CounselorProfileSchema().load(profile_input(form))
    return changes


def _staff_page(identity, member, errors: dict, form: MultiDict | None, status: int | None = None):
    profile = member.counselor
    shown = form or MultiDict([
        ("display_name", member.display_name), ("role", member.role), ("supervisor_id", member.supervisor_id or ""),
        *(("clinic_ids", c) for c in member.clinic_ids),
        *(("specialties", s) for s in (profile.specialties if profile else [])),
        *(("modalities", m) for m in (profile.modalities if profile else [])),
        ("languages", ", ".join(profile.languages) if profile else ""), ("gender", profile.gender or "" if profile else ""),
        ("style_notes", profile.style_notes or "" if profile else ""),
        ("weekly_capacity", str(profile.weekly_capacity) if profile else ""),
        ("accepting_new_clients", "yes" if profile is None or profile.accepting_new_clients else "")])
    return render_template(
        "admin_staff_edit.html", member=member, form=shown, errors=errors, clinics=list(queries.clinics(identity)),
        clinic_names=queries.clinic_names(identity), supervisors=[s for s in _supervisors(identity) if s.id != member.id],
        may_manage=identity.role == "admin", is_self=member.id == identity.staff_id,
        notice=NOTICES.get(request.args.get("done")), **_vocabulary()), status or (422 if errors else 200)


def _staff_action(staff_id: str, build_changes, done: str):
    """An administrator's one-field change (activation, password): the command, or the page with the error."""
    identity, member, answer = _scoped_member(staff_id, "admin")
    if answer is not None:
        return answer
    try:
        command_bus().handle(UpdateStaff(identity, staff_id, build_changes()))
    except ValidationError as exc:
        return _staff_page(identity, member, form_errors(exc.messages), None, 422)
    except (domain.Refused, domain.Forbidden) as exc:
        return _staff_page(identity, member, {exc.field: exc.message}, None, 422)
    return redirect(url_for("intake_admin.staff_edit", staff_id=staff_id, done=done), 303)


@admin_pages.post("/staff/<staff_id>/active")
def staff_activation(staff_id):
    """Deactivate (their sessions end everywhere: UpdateStaff raises the token version) or reactivate."""
    active = request.form.get("active") == "true"
    return _staff_action(staff_id, lambda: {"active": active}, "reactivated" if active else "deactivated")


@admin_pages.post("/staff/<staff_id>/password")
def staff_password(staff_id):
    """An administrator sets a new password: UpdateStaff hashes it and raises the member's token version, so
    every session they had open (a lost laptop, a shared one) ends at once."""
    def changes():
        password = request.form.get("password", "")
        if not password:
            raise ValidationError({"password": ["Enter the new password."]})
        if password != request.form.get("confirm_password", ""):
            raise ValidationError({"confirm_password": ["The two passwords differ."]})
        return StaffUpdateSchema().load({"password": password})
    return _staff_action(staff_id, changes, "password")


# --- clinics ---

def _instruments() -> dict[str, str]:
    return {i: d.get("title", i) for i, d in instrument_definitions().items()}


def _clinics_page(identity, errors: dict, form: MultiDict, editing: str | None = None):
    return render_template("admin_clinics.html", clinics=list(queries.clinics(identity)), errors=errors, form=form,
                           editing=editing, instruments=_instruments(),
                           notice=NOTICES.get(request.args.get("done"))), 422 if errors else 200


@admin_pages.route("/clinics", methods=["GET", "POST"])
def clinics():
    identity = require_page_identity("admin")
    if identity is None:
        return signin_redirect()
    if request.method == "GET":
        return _clinics_page(identity, {}, MultiDict())
    try:
        data = ClinicSchema().load({"name": request.form.get("name", "").strip(),
                                    "instrument_id": request.form.get("instrument_id", "")})
        command_bus().handle(CreateClinic(identity, **data))
    except ValidationError as exc:
        return _clinics_page(identity, form_errors(exc.messages), request.form)
    except domain.Refused as exc:
        return _clinics_page(identity, {exc.field: exc.message}, request.form)
    return redirect(url_for("intake_admin.clinics", done="clinic_added"), 303)


@admin_pages.post("/clinics/<clinic_id>")
def clinic_edit(clinic_id):
    identity = require_page_identity("admin")
    if identity is None:
        return signin_redirect()
    try:
        changes = ClinicUpdateSchema().load({"name": request.form.get("name", "").strip(),
                                             **_chosen(request.form, "instrument_id")})
        command_bus().handle(UpdateClinic(identity, clinic_id, changes))
    except domain.NotFound:
        return _not_found()
    except ValidationError as exc:
        return _clinics_page(identity, {f"{clinic_id}-{k}": v for k, v in form_errors(exc.messages).items()},
                             request.form, clinic_id)
    except domain.Refused as exc:
        return _clinics_page(identity, {f"{clinic_id}-{exc.field}": exc.message}, request.form, clinic_id)
    return redirect(url_for("intake_admin.clinics", done="clinic_saved"), 303)


def _chosen(form: MultiDict, name: str) -> dict:
    return {name: form[name]} if form.get(name) else {}


# --- the audit trail ---

@admin_pages.get("/audit")
def audit_trail():
    """The page is a frame: audit.js reads every service's GET /api/audit (same origin, the viewer's own
    session) and merges them, because no service may read another's database or call it."""
    identity = require_page_identity("admin")
    if identity is None:
        return signin_redirect()
    staff = list(queries.staff_members(identity))
    return render_template("admin_audit.html", staff=staff, filters=request.args)
