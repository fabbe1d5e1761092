"""The administration forms' parsing: what a browser's flat form becomes before the API's schemas check it."""
from __future__ import annotations

from werkzeug.datastructures import MultiDict

from services.intake.entrypoints.admin_pages import form_errors, profile_input, staff_input
from services.scoring.entrypoints.pages import settings_form_errors


def test_a_directory_entry_reads_languages_as_a_list_and_an_unticked_box_as_no():
    form = MultiDict([("specialties", "ocd"), ("specialties", "grief"), ("languages", "en, ES;fr  de"),
                      ("weekly_capacity", " 12 "), ("style_notes", "  ")])
    assert profile_input(form) == {"specialties": ["ocd", "grief"], "modalities": [],
                                   "languages": ["en", "es", "fr", "de"], "gender": None, "style_notes": None,
                                   "accepting_new_clients": False, "weekly_capacity": "12"}
    assert "weekly_capacity" not in profile_input(MultiDict())


def test_a_new_member_leaves_out_empty_fields_and_only_a_counselor_gets_a_directory_entry():
    desk = staff_input(MultiDict({"email": " a@b.test ", "role": "front_desk", "display_name": ""}), new=True)
    assert desk == {"email": "a@b.test", "role": "front_desk", "supervisor_id": None}
    counselor = staff_input(MultiDict({"role": "counselor", "languages": "en"}), new=True)
    assert counselor["counselor"]["languages"] == ["en"]


def test_an_edit_sends_every_account_field_so_emptying_one_is_refused_by_name():
    assert staff_input(MultiDict({"role": "counselor"}), new=False) == {
        "display_name": "", "role": "counselor", "clinic_ids": [], "supervisor_id": None}


def test_errors_of_the_directory_entry_belong_to_its_top_level_fields():
    assert form_errors({"counselor": {"languages": {0: ["Use a two-letter code."]}}, "email": ["Not valid."]}) == {
        "languages": "Use a two-letter code.", "email": "Not valid."}


def test_alert_settings_errors_are_named_by_the_form_field():
    messages = {"budget": {"false_alerts_per_counselor_month": ["Too small."]},
                "rules": {"persistently_low": {"sessions": ["Not an integer."]}}, "_schema": ["Contradictory."]}
    assert settings_form_errors(messages) == {"budget": "Too small.", "persistently_low.sessions": "Not an integer.",
                                              "settings": "Contradictory."}
