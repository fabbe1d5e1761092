import json
import random

import pytest

from services.common.events import (ExitInterviewSubmitted, InvalidEvent, ReferralDecided, decode_event, encode_event,
                                    make_event)
from services.common.instruments import instrument_definitions
from services.referral import domain
from services.referral.domain import (ClientAlliance, ClientProfile, Counselor, Directory, FitStat,
                                      MatchingConfig, MatchRequest)

# Round numbers so the expected scores below can be computed by hand.
CONFIG = MatchingConfig(top_n=10, weight_specialty=0.4, weight_fit=0.2, weight_preference=0.1,
                        weight_caseload=0.2, weight_same_clinic=0.1, outside_expertise_factor=2.0,
                        shrinkage_clients=5.0, default_fit_prior=0.5, strong_fit_margin=0.05)


def counselor(cid, clinics=("c1",), specialties=(), languages=("en",), modalities=("in_person",),
              capacity=10, caseload=5, org="o1", **extra):
    return Counselor(counselor_id=cid, org_id=org, clinic_ids=frozenset(clinics),
                     specialties=frozenset(specialties), languages=frozenset(languages),
                     modalities=frozenset(modalities), weekly_capacity=capacity, caseload=caseload, **extra)


def client(concerns=("anxiety",), clinic="c1", language="en", modality="either", gender=None, org="o1"):
    return ClientProfile(client_id="cl1", org_id=org, clinic_id=clinic, concerns=tuple(concerns),
                         language=language, modality=modality, counselor_gender=gender)


def ranked(counselors, profile, fit=None, config=CONFIG, **request):
    directory = Directory(counselors, fit or {}, default_prior=config.default_fit_prior)
    return domain.rank(directory, MatchRequest(profile, **request), config)


def ids(candidates):
    return [c.counselor_id for c in candidates]


# --- hard constraints -------------------------------------------------------------------------------------

def test_language_is_a_hard_constraint():
    result = ranked([counselor("en-only"), counselor("bilingual", languages=("en", "es"))], client(language="es"))
    assert ids(result) == ["bilingual"]
    assert "speaks es" in result[0].reasons


def test_no_language_preference_admits_every_language():
    assert ids(ranked([counselor("a", languages=("fr",)), counselor("b")], client(language=None))) == ["a", "b"]


@pytest.mark.parametrize("extra, admitted", [
    ({"capacity": 10, "caseload": 9}, True),
    ({"capacity": 10, "caseload": 10}, False),
    ({"capacity": 0, "caseload": 0}, False),
    ({"accepting_new_clients": False}, False),
    ({"active": False}, False),
])
def test_counselors_need_capacity_and_to_accept_new_clients(extra, admitted):
    assert ids(ranked([counselor("x", **extra)], client())) == (["x"] if admitted else [])


def test_the_excluded_counselor_is_never_a_candidate():
    result = ranked([counselor("leaving", specialties=("anxiety",)), counselor("other")], client(),
                    exclude=frozenset({"leaving"}))
    assert ids(result) == ["other"]


def test_other_organisations_are_never_candidates():
    assert ids(ranked([counselor("mine"), counselor("theirs", org="o2")], client())) == ["mine"]


def test_in_person_needs_the_clients_clinic_and_in_person_sessions():
    counselors = [counselor("here"), counselor("elsewhere", clinics=("c2",)),
                  counselor("here-online-only", modalities=("telehealth",))]
    assert ids(ranked(counselors, client(modality="in_person"))) == ["here"]


def test_telehealth_widens_to_every_clinic_of_the_organisation():
    counselors = [counselor("here-in-person"), counselor("elsewhere-online", clinics=("c2",),
                                                         modalities=("telehealth",))]
    result = ranked(counselors, client(modality="telehealth"))
    assert ids(result) == ["elsewhere-online"]
    assert "offers telehealth from another clinic" in result[0].reasons


def test_either_modality_takes_this_clinic_or_telehealth_anywhere():
    counselors = [counselor("here"), counselor("elsewhere-in-person", clinics=("c2",)),
                  counselor("elsewhere-online", clinics=("c2",), modalities=("telehealth",))]
    assert sorted(ids(ranked(counselors, client()))) == ["elsewhere-online", "here"]


# --- soft score -------------------------------------------------------------------------------------------

def test_ranking_by_hand_computed_scores():
    # Client: anxiety + trauma, clinic c1, prefers a female counselor; no measured fit (prior 0.5 for all).
    counselors = [
        # specialty 0.4*2/2=0.4, caseload 0.2*(1-5/10)=0.1, clinic 0.1, gender 0, fit 0.2*0.5=0.1 -> 0.7
        counselor("a", specialties=("anxiety", "trauma")),
        # specialty 0.4*1/2=0.2, caseload 0.2*(1-0/10)=0.2, clinic 0.1, gender 0.1, fit 0.1 -> 0.7 (tie: a<b)
        counselor("b", specialties=("anxiety",), caseload=0, gender="female"),
        # specialty 0, caseload 0.2*0.5=0.1, clinic 0 (telehealth elsewhere), gender 0.1, fit 0.1 -> 0.3
        counselor("c", clinics=("c2",), modalities=("telehealth",), gender="female"),
        # specialty 0.2, caseload 0.2*(1-8/10)=0.04, clinic 0.1, fit 0.1 -> 0.44
        counselor("d", specialties=("trauma",), caseload=8),
    ]
    result = ranked(counselors, client(concerns=("anxiety", "trauma"), gender="female"))
    assert [(c.counselor_id, c.score) for c in result] == [("a", 0.7), ("b", 0.7), ("d", 0.44), ("c", 0.3)]


def test_outside_expertise_doubles_the_weight_of_covering_specialties():
    counselors = [
        # normally: specialty 0.4 + caseload 0.2*0.5 + clinic 0.1 + fit 0.1 = 0.7; doubled specialty: 1.1
        counselor("specialist", specialties=("trauma",)),
        # caseload 0.2*1.0 + clinic 0.1 + gender 0.1 + fit 0.1 = 0.5 either way
        counselor("generalist", caseload=0, gender="female"),
    ]
    profile = client(concerns=("trauma",), gender="female")
    assert [c.score for c in ranked(counselors, profile)] == [0.7, 0.5]
    assert [c.score for c in ranked(counselors, profile, outside_expertise=True)] == [1.1, 0.5]


def test_measured_fit_is_shrunk_toward_the_pooled_average():
    fit = {"lucky": {"anxiety": FitStat(total=1.0, clients=1)},      # one client at 1.0
           "proven": {"anxiety": FitStat(total=14 * 0.9, clients=14)},  # fourteen clients at 0.9
           "weak": {"anxiety": FitStat(total=5 * 0.4, clients=5)}}
    directory = Directory([counselor("lucky"), counselor("proven"), counselor("weak")], fit, 0.5)
    prior = (1.0 + 12.6 + 2.0) / 20
    assert directory.prior("anxiety") == pytest.approx(0.78)
    assert domain.shrunk_fit(fit["lucky"]["anxiety"], prior, 5) == pytest.approx((1.0 + 5 * prior) / 6)
    assert domain.shrunk_fit(fit["proven"]["anxiety"], prior, 5) == pytest.approx((12.6 + 5 * prior) / 19)
    assert domain.shrunk_fit(None, prior, 5) == prior
    # Raw means rank lucky (1.0) first; shrunk, proven (~0.868) beats lucky (~0.817).
    result = domain.rank(directory, MatchRequest(client()), CONFIG)
    assert ids(result) == ["proven", "lucky", "weak"]
    assert result[0].score == pytest.approx(0.1 + 0.1 + 0.2 * (12.6 + 5 * prior) / 19, abs=1e-6)
    assert "strong alliance with anxiety clients (n=14)" in result[0].reasons
    assert not any("strong alliance" in r for r in result[2].reasons)


def test_a_concern_nobody_has_measured_uses_the_default_prior():
    directory = Directory([counselor("a")], {}, default_prior=0.5)
    assert directory.prior("grief") == 0.5


# --- determinism, reasons ---------------------------------------------------------------------------------

def test_ties_are_broken_by_counselor_id_whatever_the_input_order():
    counselors = [counselor(f"co-{i:03d}") for i in range(50)]
    shuffled = counselors[:]
    random.Random(7).shuffle(shuffled)
    config = MatchingConfig(top_n=5)
    assert ids(ranked(shuffled, client(), config=config)) == [f"co-{i:03d}" for i in range(5)]
    assert ranked(shuffled, client(), config=config) == ranked(counselors, client(), config=config)


def test_top_n_limits_the_candidates():
    counselors = [counselor(f"co-{i}") for i in range(10)]
    assert len(ranked(counselors, client(), config=MatchingConfig(top_n=3))) == 3


def test_reasons_describe_the_counselor_and_stay_short():
    every_concern = ("anxiety", "depression", "trauma", "grief", "relationships", "family")
    [candidate] = ranked([counselor("a", specialties=every_concern, gender="male")],
                         client(concerns=every_concern, gender="male"))
    assert candidate.reasons == ("specialises in anxiety, depression, trauma, grief and 2 more", "speaks en",
                                 "male counselor, as preferred", "works at this clinic", "5 of 10 places free")
    assert all(len(r) <= domain.MAX_REASON_LENGTH for r in candidate.reasons)


# --- triggers ---------------------------------------------------------------------------------------------

EXIT = {"comfortable": 4, "style_fit": 4, "confident_progress": 4, "outside_expertise": False,
        "wants_someone_else": False}


@pytest.mark.parametrize("changes, poor", [
    ({}, False), ({"style_fit": 2}, True), ({"comfortable": 1}, True), ({"confident_progress": 3}, False),
    ({"outside_expertise": True}, True), ({"wants_someone_else": True}, True),
])
def test_poor_fit_in_an_exit_interview(changes, poor):
    answers = ExitInterviewSubmitted(exit_interview_id="x-1", client_id="cl-1", counselor_id="co-1",
                                     session_number=3, **{**EXIT, **changes})
    assert domain.exit_interview_shows_poor_fit(answers, CONFIG) is poor


def test_only_a_lasting_low_or_a_sustained_fall_asks_for_a_review():
    assert domain.asks_for_review(["rupture", "persistently_low"], MatchingConfig())
    assert domain.asks_for_review(["sustained_decline"], MatchingConfig())
    assert not domain.asks_for_review(["rupture"], MatchingConfig())  # one low session: talk, not refer
    assert domain.asks_for_review(["rupture"], MatchingConfig(review_rules=("rupture",)))


# --- measured fit arithmetic ------------------------------------------------------------------------------

def test_instrument_range_of_the_shipped_instrument():
    scale = domain.instrument_range(instrument_definitions()["rapport-short"])
    assert (scale.min_total, scale.max_total) == (0, 30)
    assert scale.normalise(24) == pytest.approx(0.8)
    assert scale.normalise(40) == 1.0


def test_sessions_fold_into_one_mean_per_client_and_concern():
    alice, stats = domain.add_session(None, "alice", ("anxiety", "grief"), {}, "s1", 0.6)
    assert stats == {"anxiety": FitStat(0.6, 1), "grief": FitStat(0.6, 1)}
    alice, stats = domain.add_session(alice, "alice", ("anxiety",), stats, "s2", 1.0)
    # alice's mean moved from 0.6 to 0.8; she still counts once, with the concerns of her first session
    assert stats["anxiety"].total == pytest.approx(0.8) and stats["anxiety"].clients == 1
    assert stats["grief"].total == pytest.approx(0.8)
    bob, stats = domain.add_session(None, "bob", ("anxiety",), stats, "s3", 0.4)
    assert stats["anxiety"].total == pytest.approx(1.2) and stats["anxiety"].clients == 2
    assert alice == ClientAlliance("alice", ("anxiety", "grief"), 1.6, 2, ("s1", "s2"))


def test_a_score_counted_already_changes_nothing():
    alice, stats = domain.add_session(None, "alice", ("anxiety",), {}, "s1", 0.6)
    assert domain.add_session(alice, "alice", ("anxiety",), stats, "s1", 0.6) is None


# --- workflow ---------------------------------------------------------------------------------------------

def test_accepting_needs_an_open_referral_and_one_of_its_candidates():
    domain.check_accept(domain.OPEN, ["a", "b"], "b", "co-1", "co-1")
    with pytest.raises(domain.NotACandidate):
        domain.check_accept(domain.OPEN, ["a"], "z", "co-1", "co-1")
    for closed in (domain.ACCEPTED, domain.SUPERSEDED):
        with pytest.raises(domain.ReferralNotOpen) as refused:
            domain.check_accept(closed, ["a"], "a", "co-1", "co-1")
        assert refused.value.status == closed
    with pytest.raises(domain.ReferralNotOpen):
        domain.check_decline(domain.DECLINED)


def test_a_referral_made_for_another_counselor_than_the_clients_now_is_refused_as_stale():
    with pytest.raises(domain.StaleReferral) as refused:
        domain.check_accept(domain.OPEN, ["a"], "a", "co-1", "co-2")
    assert (refused.value.decided_for, refused.value.current) == ("co-1", "co-2")
    with pytest.raises(domain.StaleReferral):  # made for a client without a counselor, who has one now
        domain.check_accept(domain.OPEN, ["a"], "a", None, "co-2")
    # A client whose assignment referral has not heard of yet contradicts nothing (intake checks again).
    domain.check_accept(domain.OPEN, ["a"], "a", "co-1", None)


def test_an_assignment_supersedes_the_open_referrals_made_for_another_counselor():
    assert domain.superseded_by_assignment(domain.OPEN, "co-1", "co-2")
    assert domain.superseded_by_assignment(domain.OPEN, None, "co-2")
    # Made for the counselor the client has now (a review of the new match): stays open.
    assert not domain.superseded_by_assignment(domain.OPEN, "co-2", "co-2")
    # Decided ones keep their decision.
    for closed in (domain.ACCEPTED, domain.DECLINED, domain.SUPERSEDED):
        assert not domain.superseded_by_assignment(closed, "co-1", "co-2")



# --- the referral.decided contract ---------------------------------------------------------------------------

def _decided_on_the_wire(version, decision):
    return json.dumps({
        "event_id": "x1", "type": "referral.decided", "version": version, "occurred_at": "2026-11-02T10:00:00+00:00",
        "org_id": "org1", "clinic_id": "k1", "correlation_id": "x1", "producer": "referral",
        "payload": {"referral_id": "r1", "client_id": "c1", "decision": decision, "decided_by": "s1",
                    "previous_counselor_id": "t1", "new_counselor_id": "t2"}}).encode()


def test_a_version_1_decision_still_on_the_topic_is_read_as_the_current_version():
    decoded = decode_event(_decided_on_the_wire(1, "accepted"))
    assert decoded.version == 2 and isinstance(decoded.payload, ReferralDecided)
    assert (decoded.payload.decision, decoded.payload.new_counselor_id) == ("accepted", "t2")
    with pytest.raises(InvalidEvent):  # version 1 never said "superseded"
        decode_event(_decided_on_the_wire(1, "superseded"))


def test_a_superseded_referral_is_announced_as_version_2():
    event = make_event("referral.decided", {"referral_id": "r1", "client_id": "c1", "decision": "superseded",
                                            "decided_by": "s1", "previous_counselor_id": "t1",
                                            "new_counselor_id": "t2"},
                       org_id="org1", clinic_id="k1", producer="referral")
    assert event.version == 2 and decode_event(encode_event(event)).payload.decision == "superseded"
