"""Benchmark: rank 10,000 counselors for one client with referral's matching (pure domain code).

Building the directory estimates every counselor's strengths from their clients' alliance records (about
120,000 at 10,000 counselors); ranking reads them precomputed.

`python deploy/bench/matching.py [--counselors 10000] [--runs 200]` prints p50/p99 per step. The directory
is random but seeded, so every run measures the same data; most counselors pass the hard constraints,
which is the slow case (a constraint that rejects early is cheaper than scoring).
"""
from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from deploy.bench.report import Figure, Result, markdown_table  # noqa: E402
from deploy.bench.stats import percentile  # noqa: E402
from services.referral.domain import (ClientAlliance, ClientProfile, Counselor, Directory,  # noqa: E402
                                      MatchingConfig, MatchRequest, rank)

TITLE = "Matching: rank 10,000 counselors for one client"
GOAL_P99_MS = 100.0
GOAL = f"p99 well under {GOAL_P99_MS:.0f} ms"
ORG, CLINICS = "org-bench", [f"clinic-{i}" for i in range(20)]
# Stand-ins for the 20 concern codes: the domain needs no vocabulary, so the script runs without the venv.
CONCERNS = [f"concern-{i:02d}" for i in range(20)]


def directory_data(size: int, seed: int = 42) -> tuple[list[Counselor], dict[str, list[ClientAlliance]]]:
    """The counselors and, for most of them, their clients' alliance records (what the directory is built
    from): each client with one or two concerns and 1 to 12 sessions around the counselor's own level."""
    rng = random.Random(seed)
    counselors, alliances = [], {}
    for i in range(size):
        cid = f"co-{i:06d}"
        capacity = rng.randint(5, 30)
        counselors.append(Counselor(
            counselor_id=cid, org_id=ORG, clinic_ids=frozenset(rng.sample(CLINICS, rng.randint(1, 2))),
            specialties=frozenset(rng.sample(CONCERNS, rng.randint(1, 5))),
            languages=frozenset(["en"] + (["es"] if rng.random() < 0.3 else [])),
            modalities=frozenset(["in_person"] + (["telehealth"] if rng.random() < 0.7 else [])),
            weekly_capacity=capacity, caseload=rng.randint(0, capacity - 1),
            accepting_new_clients=rng.random() < 0.95, gender=rng.choice(["female", "male", "nonbinary"])))
        if rng.random() < 0.6:  # measured alliance with clients of some concerns for most counselors
            level, seen = rng.uniform(0.55, 0.95), rng.sample(CONCERNS, rng.randint(1, 6))
            clients = []
            for j in range(rng.randint(1, 40)):
                mean = min(1.0, max(0.0, rng.gauss(level, 0.08)))
                values = [min(1.0, max(0.0, rng.gauss(mean, 0.06))) for _ in range(rng.randint(1, 12))]
                clients.append(ClientAlliance(f"{cid}-{j}", tuple(rng.sample(seen, min(len(seen), rng.randint(1, 2)))),
                                              sum(values), len(values), sum_squares=sum(v * v for v in values)))
            alliances[cid] = clients
    return counselors, alliances


def timed(function, runs: int) -> tuple[list[float], object]:
    samples, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        samples.append((time.perf_counter() - start) * 1000)
    return samples, result


def measure(counselors_count: int = 10_000, runs: int = 200) -> tuple[dict[str, list[float]], list]:
    """Samples in ms per step (building the directory, ranking), and the last ranking's candidates."""
    counselors, alliances = directory_data(counselors_count)
    config = MatchingConfig()
    build, directory = timed(lambda: Directory(counselors, alliances, config), max(3, runs // 40))
    # Ranking reads the estimates only: the records they came from are not kept (as in load_directory), and
    # the full collections that walk them would otherwise show up in the ranking's p99.
    alliances.clear()
    gc.collect()
    request = MatchRequest(ClientProfile(client_id="client-bench", org_id=ORG, clinic_id=CLINICS[0],
                                         concerns=tuple(CONCERNS[:3]), language="en",
                                         modality="either", counselor_gender="female"),
                           exclude=frozenset({"co-000001"}), outside_expertise=True)
    ranking, candidates = timed(lambda: rank(directory, request, config), runs)
    return {"build directory and strengths": build, f"rank {counselors_count:,} counselors": ranking}, candidates


def run(bench: object = None) -> Result:
    """For the runner (deploy/bench/run.py): pure domain code, so no components and nothing to stop."""
    steps, candidates = measure()
    ranking = steps["rank 10,000 counselors"]
    p99 = percentile(ranking, 0.99)
    figure = Figure(f"Matching, rank 10,000 counselors: p99 **{p99:.1f} ms** (p50 {percentile(ranking, 0.5):.1f} ms)",
                    "—", "—", GOAL, p99 < GOAL_P99_MS / 2)
    return Result(TITLE, [figure],
                  ["`python deploy/bench/matching.py` (referral's `rank` on a seeded random directory where most "
                   "counselors pass the hard constraints, the slow case), in the runner's process:", "",
                   *markdown_table(["step", "runs", "p50 ms", "p99 ms", "max ms"],
                                   [[name, str(len(samples)), f"{percentile(samples, 0.5):.2f}",
                                     f"{percentile(samples, 0.99):.2f}", f"{max(samples):.2f}"]
                                    for name, samples in steps.items()]),
                   "", f"Top candidate {candidates[0].counselor_id}, score {candidates[0].score} "
                   f"({len(candidates)} returned). *Well under* is read as under half the {GOAL_P99_MS:.0f} ms."])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counselors", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    steps, candidates = measure(args.counselors, args.runs)
    print(f"{'step':<34} {'runs':>5} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for name, samples in steps.items():
        print(f"{name:<34} {len(samples):>5} {percentile(samples, 0.5):>9.2f} {percentile(samples, 0.99):>9.2f} "
              f"{max(samples):>9.2f}")
    print(f"top candidate: {candidates[0].counselor_id} score {candidates[0].score} ({len(candidates)} returned)")


if __name__ == "__main__":
    main()
