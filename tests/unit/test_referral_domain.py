import json
import math
import random
from dataclasses import replace

import pytest

from services.common.events import (ExitInterviewSubmitted, InvalidEvent, ReferralDecided, decode_event, encode_event,
                                    make_event)
from services.common.instruments import instrument_definitions
from services.referral import domain, strengths
from services.referral.domain import (ClientAlliance, ClientProfile, Counselor, Directory, FitStat,
                                      MatchingConfig, MatchRequest)
from services.referral.strengths import ConcernPrior, Strength, StrengthModel

# Round numbers so the expected scores below can be computed by hand.
CONFIG = MatchingConfig(top_n=10, weight_specialty=0.4, weight_fit=0.2, weight_preference=0.1,
                        weight_caseload=0.2, weight_same_clinic=0.1, outside_expertise_factor=2.0,
                        default_fit_prior=0.5)


def counselor(cid, clinics=("c1",), specialties=(), languages=("en",), modalities=("in_person",),
              capacity=10, caseload=5, org="o1", **extra):
    return Counselor(counselor_id=cid, org_id=org, clinic_ids=frozenset(clinics),
                     specialties=frozenset(specialties), languages=frozenset(languages),
                     modalities=frozenset(modalities), weekly_capacity=capacity, caseload=caseload, **extra)


def client(concerns=("anxiety",), clinic="c1", language="en", modality="either", gender=None, org="o1"):
    return ClientProfile(client_id="cl1", org_id=org, clinic_id=clinic, concerns=tuple(concerns),
                         language=language, modality=modality, counselor_gender=gender)


def ranked(counselors, profile, alliances=None, config=CONFIG, **request):
    directory = Directory(counselors, alliances or {}, config)
    return domain.rank(directory, MatchRequest(profile, **request), config)


# Clients of one counselor spread around the counselor's level, and each client's sessions around theirs.
CLIENT_OFFSETS = (-0.04, -0.02, 0.0, 0.02, 0.04)
SESSION_OFFSETS = (-0.03, 0.03, -0.01, 0.01)


def records(prefix, n, level, sessions=1, concern="trauma"):
    """n clients' alliance records with one counselor, clamped to 0..1."""
    out = []
    for i in range(n):
        mean = level + CLIENT_OFFSETS[i % len(CLIENT_OFFSETS)]
        values = [min(1.0, max(0.0, mean + (SESSION_OFFSETS[s % 4] if sessions > 1 else 0.0)))
                  for s in range(sessions)]
        out.append(ClientAlliance(f"{prefix}-{i}", (concern,), sum(values), sessions,
                                  sum_squares=sum(v * v for v in values)))
    return out


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
    # Client: anxiety + trauma, clinic c1, prefers a female counselor; no measured strength (neutral: 0).
    counselors = [
        # specialty 0.4*2/2=0.4, caseload 0.2*(1-5/10)=0.1, clinic 0.1, gender 0 -> 0.6
        counselor("a", specialties=("anxiety", "trauma")),
        # specialty 0.4*1/2=0.2, caseload 0.2*(1-0/10)=0.2, clinic 0.1, gender 0.1 -> 0.6 (tie: a<b)
        counselor("b", specialties=("anxiety",), caseload=0, gender="female"),
        # specialty 0, caseload 0.2*0.5=0.1, clinic 0 (telehealth elsewhere), gender 0.1 -> 0.2
        counselor("c", clinics=("c2",), modalities=("telehealth",), gender="female"),
        # specialty 0.2, caseload 0.2*(1-8/10)=0.04, clinic 0.1 -> 0.34
        counselor("d", specialties=("trauma",), caseload=8),
    ]
    result = ranked(counselors, client(concerns=("anxiety", "trauma"), gender="female"))
    assert [(c.counselor_id, c.score) for c in result] == [("a", 0.6), ("b", 0.6), ("d", 0.34), ("c", 0.2)]
    assert result[1].parts == {"specialty": 0.2, "strength": 0.0, "preference": 0.1, "capacity": 0.2,
                               "clinic": 0.1}


def test_outside_expertise_doubles_the_weight_of_covering_specialties():
    counselors = [
        # normally: specialty 0.4 + caseload 0.2*0.5 + clinic 0.1 = 0.6; doubled specialty: 1.0
        counselor("specialist", specialties=("trauma",)),
        # caseload 0.2*1.0 + clinic 0.1 + gender 0.1 = 0.4 either way
        counselor("generalist", caseload=0, gender="female"),
    ]
    profile = client(concerns=("trauma",), gender="female")
    assert [c.score for c in ranked(counselors, profile)] == [0.6, 0.4]
    assert [c.score for c in ranked(counselors, profile, outside_expertise=True)] == [1.0, 0.4]


def test_a_concern_nobody_has_measured_uses_the_default_prior():
    directory = Directory([counselor("a")], {}, CONFIG)
    assert directory.prior("grief").mean == 0.5
    assert directory.prior("grief").counselor_var == pytest.approx(CONFIG.min_counselor_sd ** 2)


# --- measured strengths: the estimate ------------------------------------------------------------------------
# Known answers with the variance components given: σ² (sessions within a client) 0.01, τ²_client 0.01, and
# for the concern a usual level of 0.75 with a between-counselor variance of 0.0025 (SD 0.05).
SESSION_VAR, CLIENT_VAR = 0.01, 0.01
PRIOR = ConcernPrior(mean=0.75, counselor_var=0.0025, counselors=10)


def posterior(clients):
    return strengths.shrink(*strengths.counselor_mean(clients, SESSION_VAR, CLIENT_VAR), PRIOR)


def test_each_client_weighs_by_how_precisely_their_sessions_measure_them():
    # weights 1/(0.01 + 0.03/1) = 25 and 1/(0.01 + 0.03/3) = 50
    mean, var = strengths.counselor_mean([(0.8, 1), (0.6, 3)], session_var=0.03, client_var=0.01)
    assert mean == pytest.approx((25 * 0.8 + 50 * 0.6) / 75) and var == pytest.approx(1 / 75)


def test_many_average_clients_against_two_lucky_sessions():
    average = posterior([(0.75, 4)] * 20)    # var (0.01 + 0.01/4) / 20 = 0.000625; B = 0.8
    lucky = posterior([(1.0, 2)])            # var 0.01 + 0.01/2 = 0.015; B = 1/7
    assert average == pytest.approx((0.75, 0.5 ** 0.5 / 10 ** 1.5))  # SD √0.0005 ≈ 0.022
    assert lucky == pytest.approx((0.75 + 0.25 / 7, (0.015 / 7) ** 0.5))  # 0.786, SD ≈ 0.046
    # One client is not enough evidence to weigh in at all: the strength is not shown, its part is 0.
    counselors = [counselor("average", specialties=("trauma",)), counselor("lucky", specialties=("trauma",))]
    alliances = {"average": records("av", 20, 0.75, sessions=4), "lucky": [ClientAlliance("l1", ("trauma",), 2.0, 2)]}
    result = ranked(counselors, client(concerns=("trauma",)), alliances)
    by_id = {c.counselor_id: c for c in result}
    assert by_id["lucky"].parts["strength"] == 0 and not by_id["lucky"].strengths[0].enough
    assert "alliance with trauma clients: not enough data yet (1 client)" in by_id["lucky"].reasons
    assert by_id["average"].strengths[0].enough and by_id["average"].strengths[0].clients == 20


def test_many_clients_with_few_sessions_outweigh_one_client_with_many():
    one = posterior([(0.9, 30)])              # var 0.01 + 0.01/30: the client's own level stays uncertain
    many = posterior([(0.9, 3)] * 10)         # var (0.01 + 0.01/3) / 10
    assert one[0] == pytest.approx(0.75 + 0.15 * 0.0025 / (0.0025 + 0.01 + 0.01 / 30))  # ≈ 0.779
    assert many[0] == pytest.approx(0.75 + 0.15 * 0.0025 / (0.0025 + 0.001 + 0.001 / 3))  # ≈ 0.848
    assert many[1] < one[1]
    # Within one client, more sessions do count: thirty solid sessions beat two perfect ones.
    assert posterior([(0.95, 30)])[0] > posterior([(1.0, 2)])[0]


def test_no_evidence_gives_the_usual_level_with_the_between_counselor_sd():
    assert strengths.counselor_mean([], SESSION_VAR, CLIENT_VAR) == (0.0, math.inf)
    assert posterior([]) == (0.75, 0.05)
    directory = Directory([counselor("new")], {}, CONFIG)
    assert directory.strength("new", "trauma") == Strength("trauma", 0, 0)
    assert directory.prior("trauma").mean == CONFIG.default_fit_prior


def test_the_posterior_sd_falls_with_evidence():
    sds = [posterior([(0.8, 4)] * n)[1] for n in range(0, 41)]
    assert all(later < earlier for earlier, later in zip(sds, sds[1:]))
    assert sds[0] == pytest.approx(0.05) and sds[40] < 0.02


def test_the_within_client_variance_is_pooled_from_the_sums_of_squares():
    table = strengths.StrengthTable({"co": [
        ClientAlliance("a", ("grief",), 1.4, 2, sum_squares=0.6 ** 2 + 0.8 ** 2),          # squares 0.02, 1 dof
        ClientAlliance("b", ("grief",), 2.1, 3, sum_squares=0.5 ** 2 + 0.7 ** 2 + 0.9 ** 2),  # 0.08, 2 dof
        ClientAlliance("old", ("grief",), 1.0, 2, sum_squares=None),   # kept before squares were: unknown
        ClientAlliance("once", ("grief",), 0.9, 1, sum_squares=0.81)]})  # one session says nothing of it
    assert table.session_var == pytest.approx(0.1 / 3)
    # Nothing to pool: the configured stand-in.
    assert strengths.StrengthTable({"co": [ClientAlliance("old", ("grief",), 1.0, 2, sum_squares=None)]},
                                   StrengthModel(default_session_sd=0.2)).session_var == pytest.approx(0.04)


def test_the_between_counselor_variance_is_never_zero():
    # Every counselor exactly alike: the spread is floored at min_counselor_sd, so nobody is shrunk onto the mean.
    same = {f"co-{i}": records(f"co-{i}", 5, 0.8) for i in range(5)}
    table = strengths.StrengthTable(same, StrengthModel(min_counselor_sd=0.025))
    assert table.prior("trauma").counselor_var == pytest.approx(0.025 ** 2)
    assert table.prior("trauma").mean == pytest.approx(0.8)
    assert all(abs(table.strength(c, "trauma").effect) < 1e-9 for c in same)


# --- measured strengths: the ranking -------------------------------------------------------------------------

def issue_scenario():
    """Issue 19: twenty counselors alike but for their measured alliance with trauma clients. Seventeen have
    ten clients each (four sessions) at 0.70 to 0.80, "star" thirty at 0.95, "lucky" one client with two
    perfect sessions, and "newcomer" no data yet but the gender the client prefers."""
    alike = {"specialties": ("trauma",), "caseload": 5}
    counselors = [counselor(f"co-{k:02d}", gender="male", **alike) for k in range(17)]
    counselors += [counselor("star", gender="male", **alike), counselor("lucky", gender="male", **alike),
                   counselor("newcomer", gender="female", **alike)]
    alliances = {f"co-{k:02d}": records(f"co-{k:02d}", 10, 0.70 + 0.10 * k / 16, sessions=4) for k in range(17)}
    alliances["star"] = records("star", 30, 0.95, sessions=4)
    alliances["lucky"] = [ClientAlliance("lucky-1", ("trauma",), 2.0, 2, sum_squares=2.0)]
    return counselors, alliances


def test_a_clear_well_evidenced_strength_ranks_first():
    counselors, alliances = issue_scenario()
    config = replace(MatchingConfig(), top_n=20)
    directory = Directory(counselors, alliances, config)
    result = domain.rank(directory, MatchRequest(client(concerns=("trauma",), gender="female")), config)
    by_id = {c.counselor_id: c for c in result}
    assert ids(result)[0] == "star"
    star, newcomer, lucky = by_id["star"], by_id["newcomer"], by_id["lucky"]
    # The counselor with no data who matches the gender preference does not beat thirty clients at 0.95.
    assert star.score > newcomer.score
    assert star.parts["strength"] == pytest.approx(config.weight_fit)  # effect clamped at 1
    assert star.parts["strength"] > newcomer.parts["preference"] + newcomer.parts["clinic"]
    assert newcomer.parts["strength"] == 0 and lucky.parts["strength"] == 0  # no data is neutral
    [evidence] = star.strengths
    assert (evidence.clients, evidence.sessions) == (30, 120)
    assert 0.9 < evidence.estimate < 0.95 and evidence.sd < 0.02
    assert "strong alliance with trauma clients (30 clients, 120 sessions)" in star.reasons
    # The clearly weaker counselors rank below the neutral ones.
    assert ids(result).index("co-00") > ids(result).index("lucky")


def test_the_parts_sum_to_the_score():
    rng = random.Random(3)
    concerns = ("anxiety", "trauma", "grief")
    counselors = [counselor(f"co-{i:02d}", specialties=rng.sample(concerns, rng.randint(0, 2)),
                            caseload=rng.randint(0, 9), gender=rng.choice(("female", "male")),
                            clinics=rng.choice((("c1",), ("c2",))), modalities=("in_person", "telehealth"))
                  for i in range(40)]
    alliances = {c.counselor_id: [ClientAlliance(f"{c.counselor_id}-{j}", (rng.choice(concerns),),
                                                 (n := rng.randint(1, 6)) * (m := rng.uniform(0.4, 1.0)), n,
                                                 sum_squares=n * m * m + rng.uniform(0, 0.05))
                                  for j in range(rng.randint(0, 12))] for c in counselors}
    config = replace(MatchingConfig(), top_n=40)
    for outside in (False, True):
        result = ranked(counselors, client(concerns=("anxiety", "trauma"), gender="female"), alliances,
                        config=config, outside_expertise=outside)
        assert len(result) == 40
        for candidate in result:
            assert tuple(candidate.parts) == domain.PARTS
            assert sum(candidate.parts.values()) == pytest.approx(candidate.score, abs=1e-5)
            assert [s.concern for s in candidate.strengths] == ["anxiety", "trauma"]


def test_a_recommendation_records_exclusions_and_the_weights_applied():
    counselors = [counselor("leaving", specialties=("trauma",)), counselor("full", caseload=10),
                  counselor("closed", accepting_new_clients=False), counselor("french", languages=("fr",)),
                  counselor("elsewhere", clinics=("c2",)), counselor("fine")]
    directory = Directory(counselors, {}, CONFIG)
    request = MatchRequest(client(concerns=("trauma",)), exclude=frozenset({"leaving"}), outside_expertise=True)
    recommendation = domain.recommend(directory, request, CONFIG)
    assert ids(recommendation.candidates) == ["fine"]
    assert recommendation.excluded == {"current_counselor": 1, "no_capacity": 1, "not_accepting": 1,
                                       "language": 1, "modality": 1}
    assert recommendation.weights == {"specialty": 0.8, "strength": 0.2, "preference": 0.1, "capacity": 0.2,
                                      "clinic": 0.1}
    assert recommendation.outside_expertise


def test_the_parts_travel_as_numbers_in_the_recommended_event():
    counselors, alliances = issue_scenario()
    config = replace(MatchingConfig(), top_n=20)
    result = domain.rank(Directory(counselors, alliances, config),
                         MatchRequest(client(concerns=("trauma",), gender="female")), config)
    by_id = {c.counselor_id: c for c in result}
    star, lucky = domain.wire_parts(by_id["star"]), domain.wire_parts(by_id["lucky"])
    assert star["strength.trauma.clients"] == 30 and star["strength.trauma.sessions"] == 120
    assert {"strength.trauma.estimate", "strength.trauma.sd", "strength.trauma.effect"} <= set(star)
    assert lucky["strength.trauma.clients"] == 1 and "strength.trauma.estimate" not in lucky
    payload = {"referral_id": "r1", "trigger_event_id": "t1", "client_id": "cl1", "reason": "intake",
               "candidates": [{"counselor_id": c.counselor_id, "score": c.score, "reasons": list(c.reasons),
                               "parts": domain.wire_parts(c)} for c in result]}
    event = make_event("referral.recommended", payload, org_id="o1", clinic_id="c1", producer="referral")
    decoded = decode_event(encode_event(event))
    assert decoded.payload.candidates[0].parts == domain.wire_parts(result[0])
    # An event made before parts were carried still reads, with no parts.
    del payload["candidates"][0]["parts"]
    old = decode_event(encode_event(make_event("referral.recommended", payload, org_id="o1", clinic_id="c1",
                                               producer="referral")))
    assert old.payload.candidates[0].parts == {}


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
    assert alice == ClientAlliance("alice", ("anxiety", "grief"), 1.6, 2, ("s1", "s2"), pytest.approx(1.36))


def test_a_record_kept_before_squares_were_summed_keeps_them_unknown():
    old = ClientAlliance("alice", ("anxiety",), 1.6, 2, ("s1", "s2"), sum_squares=None)
    folded, _ = domain.add_session(old, "alice", ("anxiety",), {"anxiety": FitStat(0.8, 1)}, "s3", 0.9)
    assert folded.sessions == 3 and folded.total == pytest.approx(2.5) and folded.sum_squares is None


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
