"""Create an organisation with its clinics and first admin: the step before anyone can sign in.

    python -m services.intake.entrypoints.seed --org demo-org --org-name "Demo practice" \
        --clinic demo-north="North clinic" --clinic demo-south="South clinic" \
        --admin-email admin@example.org --admin-name "Ada Admin" --admin-password '...'

Idempotent: what exists already (by id, or by e-mail for the admin) is left as it is. Everything else
(staff, counselors, clients) is then done by the admin through the API or the pages.
"""
from __future__ import annotations

import argparse
import sys

from kafka.errors import KafkaError

from services.common import mongo
from services.common.config import Settings
from services.common.kafka import EventProducer
from services.common.logs import configure_logging

from services.intake import domain
from services.intake.bootstrap import bootstrap
from services.intake.commands import SeedOrganisation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intake.entrypoints.seed",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--org", required=True, help="organisation id")
    parser.add_argument("--org-name", required=True)
    parser.add_argument("--clinic", action="append", required=True, metavar="ID=NAME")
    parser.add_argument("--admin-email", required=True)
    parser.add_argument("--admin-name", default="Administrator")
    parser.add_argument("--admin-password", required=True)
    args = parser.parse_args(argv)
    clinics = dict(pair.split("=", 1) for pair in args.clinic)
    settings = Settings.load("intake")
    configure_logging("intake-seed", settings.log_level)
    mongo.connect(settings)
    try:
        producer = EventProducer(settings, timeout_s=5)
    except KafkaError:
        producer = None  # the outbox relay publishes once the broker is there
    try:
        admin = bootstrap(publish=producer.send if producer else None).handle(SeedOrganisation(
            args.org, args.org_name, clinics, args.admin_email, args.admin_name, args.admin_password))
    except domain.Refused as exc:
        print(f"error: {exc.field}: {exc.message}", file=sys.stderr)
        return 2
    finally:
        if producer:
            producer.close()
    print(f"organisation {args.org}: {len(clinics)} clinics, admin {admin.email}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
