"""The repair vocabulary shared by scoring (which names it on an alert) and notify (which shows it and asks,
on acknowledgement, what was done): codes travel in events, the wording lives here.

The suggestions follow Bordin's dimensions and the rupture-repair literature (Safran & Muran): be patient
with the bond, agree goals again, start small with the tasks, find what matters to the client.
"""
from __future__ import annotations

REPAIR_SUGGESTIONS = {
    "goal": "Revisit the client's goals together and agree again on what you are working towards.",
    "task": "Agree together what you will do in sessions; start small and check it makes sense to the client.",
    "bond": "Be patient, show genuine empathy and find the client's interests: what matters to them.",
}

# What a counselor did after an alert, asked when they acknowledge it: a label for each code of
# events.REPAIR_ACTIONS (the codes travel in alert.acknowledged).
ACTION_LABELS = {
    "discussed_alliance": "Talked about how our work together is going",
    "reagreed_goals": "Agreed the goals again",
    "changed_approach": "Changed the approach or the tasks",
    "referred": "Referred the client on",
    "other": "Something else",
}


def repair_suggestion(dimension: str | None) -> str | None:
    return REPAIR_SUGGESTIONS.get(dimension) if dimension else None
