"""`rapport`: operations commands. `rapport ensure-topics` creates the platform's topics (idempotent)."""
from __future__ import annotations

import argparse
import sys

from .config import Settings
from .kafka import ensure_topics, wait_for_broker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rapport", description="Rapport operations")
    sub = parser.add_subparsers(dest="command", required=True)
    topics = sub.add_parser("ensure-topics",
                            help="create every event and dead-letter topic that does not exist yet")
    topics.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                        help="wait this long for the broker to answer first")
    args = parser.parse_args(argv)
    if args.command == "ensure-topics":
        settings = Settings.load("ops")
        if args.wait:
            wait_for_broker(settings, args.wait)
        created = ensure_topics(settings)
        print(f"created {len(created)} topics: {', '.join(created)}" if created else "all topics exist")
    return 0


if __name__ == "__main__":
    sys.exit(main())
