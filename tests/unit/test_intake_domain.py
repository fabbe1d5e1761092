"""Intake's rules on plain data: answers, exit interviews, link states, assignments, staff changes."""
from datetime import datetime, timedelta, timezone

import pytest

from services.common.instruments import instrument_definitions
from services.intake import domain
from services.intake.domain import CounselorFacts, FormItem, Refused

ITEMS = [FormItem("goal-1", "Goals", 0, 10), FormItem("bond-1", "Bond", 0, 10)]
NOW = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


def test_answers_from_a_form_become_whole_numbers():
    answers, errors = domain.validate_answers(ITEMS, {"goal-1": "7", "bond-1": 10})
    assert answers == {"goal-1": 7, "bond-1": 10} and errors == {}


@pytest.mark.parametrize("value", ["", None, "eleven", "11", "-1", "7.5", 7.5, True])
def test_every_answer_must_be_a_whole_number_in_range(value):
    answers, errors = domain.validate_answers(ITEMS, {"goal-1": value, "bond-1": "3"})
    assert set(errors) == {"goal-1"} and answers == {"bond-1": 3}


def test_missing_and_unknown_items_are_named():
    _, errors = domain.validate_answers(ITEMS, {"goal-1": "1", "extra": "2"})
    assert set(errors) == {"bond-1", "extra"}


def test_items_without_shipped_text_show_the_organisations_wording_or_their_number():
    wai = instrument_definitions()["wai-sr"]
    items = domain.instrument_form(wai, {"wai-1": "Licensed wording"})
    assert items[0].text == "Licensed wording" and items[1].text == "Item 2"
    assert (items[0].minimum, items[0].maximum) == (1, 5) and list(items[0].choices) == [1, 2, 3, 4, 5]
    rating = domain.instrument_form(instrument_definitions()["session-rating-4"], {})
    assert rating[0].text == "Item 1: Relationship"
    short = domain.instrument_form(instrument_definitions()["rapport-short"], {"goal-1": "ignored"})
    assert short[0].text == "Today we worked on what matters to me."


def test_an_exit_interview_needs_every_scale_and_yes_no_answer():
    values, errors = domain.validate_exit_interview({
        "comfortable": "5", "style_fit": "1", "confident_progress": 3, "outside_expertise": "yes",
        "wants_someone_else": False, "comment": "  "})
    assert errors == {}
    assert values == {"comfortable": 5, "style_fit": 1, "confident_progress": 3, "outside_expertise": True,
                      "wants_someone_else": False, "comment": None}
    _, errors = domain.validate_exit_interview({"comfortable": "6", "style_fit": "0", "outside_expertise": "maybe",
                                                "comment": "x" * (domain.EXIT_COMMENT_MAX + 1)})
    assert set(errors) == {"comfortable", "style_fit", "confident_progress", "outside_expertise",
                           "wants_someone_else", "comment"}


def test_link_states():
    later = NOW + timedelta(hours=1)
    assert domain.link_state(later, answered=False, now=NOW) == "open"
    assert domain.link_state(NOW, answered=False, now=NOW) == "expired"
    assert domain.link_state(NOW - timedelta(days=1), answered=True, now=NOW) == "answered"


COUNSELOR = CounselorFacts("c1", "org1", "counselor", ("north",), True)


def test_a_counselor_of_the_clients_clinic_may_take_the_client():
    domain.check_assignment("org1", "north", COUNSELOR)


def test_a_telehealth_counselor_of_another_clinic_may_take_the_client():
    telehealth = CounselorFacts("c2", "org1", "counselor", ("south",), True, offers_telehealth=True)
    domain.check_assignment("org1", "north", telehealth)
    with pytest.raises(Refused):
        domain.check_assignment("org2", "north", telehealth)


@pytest.mark.parametrize("org, clinic, counselor, message", [
    ("org2", "north", COUNSELOR, "No such counselor"),
    ("org1", "south", COUNSELOR, "does not work at"),
    ("org1", "north", CounselorFacts("c1", "org1", "front_desk", ("north",), True), "No such counselor"),
    ("org1", "north", CounselorFacts("c1", "org1", "counselor", ("north",), False), "no longer active"),
    ("org1", "north", None, "No such counselor"),
])
def test_assignments_across_organisations_clinics_or_roles_are_refused(org, clinic, counselor, message):
    with pytest.raises(Refused, match=message) as refused:
        domain.check_assignment(org, clinic, counselor)
    assert refused.value.field == "counselor_id"


def test_a_referral_decided_for_another_counselor_than_the_clients_now_is_stale_unless_already_carried_out():
    assert not domain.referral_is_stale("co-1", "co-1", already_recorded=False)
    assert domain.referral_is_stale("co-1", "co-2", already_recorded=False)
    assert domain.referral_is_stale(None, "co-2", already_recorded=False)
    # A redelivery of a decision carried out already: the client is with the chosen counselor, not stale.
    assert not domain.referral_is_stale("co-1", "co-9", already_recorded=True)


def test_session_numbers_follow_the_highest_recorded():
    assert domain.next_session_number([]) == 1
    assert domain.next_session_number([1, 3, 2]) == 4


@pytest.mark.parametrize("actor, target, changed, allowed", [
    ("admin", "admin", {"role"}, True), ("admin", "front_desk", {"password_hash", "clinic_ids"}, True),
    ("supervisor", "counselor", {"counselor", "display_name"}, True),
    # A supervisor of one clinic never sets a password, clinics or roles: that would reach other clinics.
    ("supervisor", "counselor", {"password_hash"}, False), ("supervisor", "counselor", {"clinic_ids"}, False),
    ("supervisor", "counselor", {"active"}, False), ("supervisor", "front_desk", {"display_name"}, False),
    ("supervisor", "admin", {"display_name"}, False), ("front_desk", "counselor", {"counselor"}, False),
    ("counselor", "counselor", {"counselor"}, False),
])
def test_who_may_change_what_of_which_staff(actor, target, changed, allowed):
    if allowed:
        domain.check_staff_change(actor, target, frozenset(changed))
    else:
        with pytest.raises(domain.Forbidden):
            domain.check_staff_change(actor, target, frozenset(changed))


def test_a_counselor_counseled_a_client_when_an_assignment_names_them_either_way():
    history = [("co-1", None), ("co-2", "co-1")]
    assert domain.counseled_before("co-1", history) and domain.counseled_before("co-2", history)
    assert not domain.counseled_before("co-3", history) and not domain.counseled_before("co-1", [])
