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
from services.common.outbox import outbox_entry, publish_or_defer

from services.intake.adapters.accounts import MIN_PASSWORD_LENGTH, hash_password, normalise_email
from services.intake.handlers import staff_events
from services.intake.adapters.models import Clinic, Organisation, Staff


def seed_organisation(org_id: str, org_name: str, clinics: dict[str, str], admin_email: str,
                      admin_name: str, admin_password: str, publish=None) -> Staff:
    """The organisation, its clinics and its first admin; returns the admin (existing or new)."""
    if len(admin_password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the admin password needs at least {MIN_PASSWORD_LENGTH} characters")
    if Organisation.objects(id=org_id).first() is None:
        Organisation(id=org_id, name=org_name).save()
    for clinic_id, name in clinics.items():
        existing = Clinic.objects(id=clinic_id).first()
        if existing is None:
            Clinic(id=clinic_id, org_id=org_id, name=name).save(force_insert=True)
        elif existing.org_id != org_id:
            raise ValueError(f"clinic id {clinic_id} belongs to another organisation")
    admin = Staff.objects(email=normalise_email(admin_email)).first()
    if admin is not None:
        if admin.org_id != org_id:
            raise ValueError("that e-mail belongs to a staff member of another organisation")
        return admin
    admin = Staff(id=f"{org_id}-admin", org_id=org_id, email=normalise_email(admin_email),
                  display_name=admin_name, password_hash=hash_password(admin_password), role="admin",
                  clinic_ids=list(clinics))
    admin.pending_events = [outbox_entry(e, key=admin.id) for e in staff_events(admin)]
    admin.save(force_insert=True)
    if publish is not None:
        publish_or_defer(admin, publish)  # else the worker's outbox relay publishes staff.updated
    return admin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intake.entrypoints.seed", description=__doc__.split("\n")[0])
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
        admin = seed_organisation(args.org, args.org_name, clinics, args.admin_email, args.admin_name,
                                  args.admin_password, producer.send if producer else None)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if producer:
            producer.close()
    print(f"organisation {args.org}: {len(clinics)} clinics, admin {admin.email}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
