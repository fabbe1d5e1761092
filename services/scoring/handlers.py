"""Scoring's event handlers: plain functions, listed in EVENT_HANDLERS at the bottom."""
from __future__ import annotations

from services.common.events import Event, InvalidEvent, Topic, make_event, new_id
from services.common.outbox import Publish, insert_once, outbox_entry, publish_pending

from . import domain
from .instruments import shipped_instruments
from .models import AlertRecord, SessionScore

PRODUCER = "scoring"


def handle_feedback_submitted(event: Event, publish: Publish) -> None:
    p = event.payload
    instrument = shipped_instruments().get(p["instrument_id"])
    if instrument is None:
        raise InvalidEvent(f"unknown instrument {p['instrument_id']}")
    try:
        score = domain.score_answers(instrument, p["answers"])
    except domain.InvalidAnswers as exc:
        raise InvalidEvent(str(exc)) from None
    alerts = domain.evaluate_alerts(instrument, score)

    def derived(type_: str, payload: dict) -> Event:
        return make_event(type_, payload, org_id=event.org_id, clinic_id=event.clinic_id, producer=PRODUCER,
                          correlation_id=event.correlation_id)

    common = {"source_event_id": event.event_id, "client_id": p["client_id"],
              "counselor_id": p["counselor_id"], "session_number": p["session_number"],
              "instrument_id": instrument.id}
    scored = derived(Topic.ALLIANCE_SCORED, {**common, "score_id": event.event_id, "total": score.total,
                                             "mean": score.mean, "subscales": dict(score.subscales)})
    records, dropped = [], []
    for alert in alerts:
        record = AlertRecord(alert_id=new_id(), rule=alert.rule, dimension=alert.dimension,
                             severity=alert.severity, threshold=alert.threshold)
        records.append(record)
        dropped.append(derived(Topic.ALLIANCE_DROPPED, {
            **common, "alert_id": record.alert_id, "rule": alert.rule, "dimension": alert.dimension,
            "severity": alert.severity, "total": score.total, "threshold": alert.threshold,
            "subscales": dict(score.subscales)}))
    document = insert_once(SessionScore(
        id=event.event_id, org_id=event.org_id, clinic_id=event.clinic_id, client_id=p["client_id"],
        counselor_id=p["counselor_id"], session_number=p["session_number"], instrument_id=instrument.id,
        total=score.total, mean=score.mean, subscales=dict(score.subscales), alerts=records,
        pending_events=[outbox_entry(e, key=p["client_id"]) for e in (scored, *dropped)],
    ))
    # After a crash between the write and the publish, the redelivered event lands here with the stored
    # document and publishes what it still holds: the same events, with the same ids.
    publish_pending(document, publish)


EVENT_HANDLERS = {
    Topic.FEEDBACK_SUBMITTED.value: handle_feedback_submitted,
}
