"""`rapport`: operations commands for the event log.

    rapport ensure-topics [--wait S]       create every event and dead-letter topic (idempotent)
    rapport dlq list TOPIC                  what is in TOPIC.dlq, with its origin and error
    rapport dlq redrive TOPIC               publish TOPIC.dlq's messages back to TOPIC, each once
    rapport lag                             committed position vs end, per group and partition
    rapport audit verify SERVICE            check SERVICE's hash-chained audit trail; name the first break
    rapport replay SERVICE --group G --db-prefix P [--publish]
                                            re-process SERVICE's topics from the start into a fresh
                                            group and database (e.g. re-scoring after a rule change)
    rapport backtest [--instrument ID] [--settings FILE.json] < sessions.jsonl > alerts.jsonl
                                            what the alert rules would have sent over answered sessions
                                            (see services/scoring/README.md); needs no broker or database

Connection settings come from the environment (RAPPORT_KAFKA_BOOTSTRAP, RAPPORT_MONGO_URI).
"""
from __future__ import annotations

import argparse
import sys

from . import audit, mongo, ops
from .config import Settings
from .events import Topic
from .kafka import ensure_topics, wait_for_broker

SERVICES_WITH_CONSUMERS = tuple(ops.EVENT_HANDLERS_BY_SERVICE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rapport", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    topics = sub.add_parser("ensure-topics",
                            help="create every event and dead-letter topic that does not exist yet")
    topics.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                        help="wait this long for the broker to answer first")
    dlq = sub.add_parser("dlq", help="inspect or re-drive a dead-letter topic")
    dlq.add_argument("action", choices=("list", "redrive"))
    dlq.add_argument("topic", choices=[t.value for t in Topic], help="the original topic")
    sub.add_parser("lag", help="consumer lag per group and partition")
    audit_cmd = sub.add_parser("audit", help="verify a service's audit trail")
    audit_cmd.add_argument("action", choices=("verify",))
    audit_cmd.add_argument("service", choices=SERVICES_WITH_CONSUMERS)
    replay = sub.add_parser("replay", help="re-process a service's topics into a fresh group and database")
    replay.add_argument("service", choices=SERVICES_WITH_CONSUMERS)
    replay.add_argument("--group", required=True, help="a consumer group name not used before")
    replay.add_argument("--db-prefix", required=True, help="database prefix for the replay's own database")
    replay.add_argument("--publish", action="store_true",
                        help="also publish what the handlers derive (default: keep it in the replay database)")
    backtest = sub.add_parser("backtest", help="what the alert rules would have sent over answered sessions")
    backtest.add_argument("--instrument", metavar="ID", help="score every line with this instrument")
    backtest.add_argument("--settings", metavar="FILE.json", type=argparse.FileType(),
                          help="alert settings as an admin sets them for a clinic: {\"budget\": ..., \"rules\": ...}")
    args = parser.parse_args(argv)

    if args.command == "ensure-topics":
        settings = Settings.load("ops")
        if args.wait:
            wait_for_broker(settings, args.wait)
        created = ensure_topics(settings)
        print(f"created {len(created)} topics: {', '.join(created)}" if created else "all topics exist")
    elif args.command == "dlq" and args.action == "list":
        letters = ops.dead_letters(Settings.load("ops"), args.topic)
        print(f"{len(letters)} dead letters in {args.topic}.dlq")
        for d in letters:
            h = d.headers
            print(f"{d.partition}:{d.offset}  from {h.get('origin-topic')}@{h.get('origin-partition')}:"
                  f"{h.get('origin-offset')}  group={h.get('consumer-group')}  {h.get('error-class')}: "
                  f"{h.get('error-message')}  at {h.get('failed-at')}")
    elif args.command == "dlq":
        print(f"re-drove {ops.redrive(Settings.load('ops'), args.topic)} messages to {args.topic}")
    elif args.command == "lag":
        lags = ops.consumer_lag(Settings.load("ops"))
        print(f"{'group':<28} {'topic':<28} {'part':>4} {'committed':>10} {'end':>10} {'lag':>8}")
        for lag in lags:
            print(f"{lag.group:<28} {lag.topic:<28} {lag.partition:>4} {lag.committed or 0:>10} "
                  f"{lag.end:>10} {lag.behind:>8}")
    elif args.command == "audit":
        mongo.connect(Settings.load(args.service))
        report = audit.verify()
        print(f"{report.records} records, last hash {report.last_hash}: "
              f"{'intact' if report.intact else report.problem}")
        return 0 if report.intact else 1
    elif args.command == "backtest":
        # The one command that is a service's own domain, not operations of the event log: imported here
        # only, so the other commands load no scoring code.
        from services.scoring.entrypoints.backtest_cli import backtest_command
        return backtest_command(args.instrument, args.settings, sys.stdin, sys.stdout, sys.stderr)
    elif args.command == "replay":
        settings = Settings.load(args.service, {"db_prefix": args.db_prefix})
        counts = ops.replay(settings, args.group, publish=args.publish)
        print(", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
