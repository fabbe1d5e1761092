"""The platform's codes in words, for the pages: one mapping shared by every service's templates through the
Jinja filter `words` (`{{ 'goal'|words }}` -> "agreement on goals", `{{ client.concerns|words }}` ->
"Anxiety, OCD").

Codes travel in events and are stored (services/common/events.py, services/intake/domain.py); the wording
lives here only, so a label changed once reads the same on the front desk, in the inbox and in referral.
A code no table knows reads as itself with underscores as spaces: a new code shows up legibly before anyone
gives it a label, at the cost of a lower-case word on the page.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from services.common.repair import ACTION_LABELS

# Presenting concerns and counselors' specialties (events.CONCERNS), as a clinician would name them.
CONCERN_LABELS = {
    "anxiety": "Anxiety",
    "depression": "Depression",
    "trauma": "Trauma and PTSD",
    "grief": "Grief and loss",
    "relationships": "Relationships",
    "family": "Family",
    "parenting": "Parenting",
    "substance_use": "Substance use",
    "eating": "Eating disorders",
    "stress": "Stress",
    "self_esteem": "Self-esteem",
    "anger": "Anger",
    "life_transitions": "Life transitions",
    "identity": "Identity",
    "work": "Work and career",
    "sleep": "Sleep",
    "ocd": "OCD",
    "mood_bipolar": "Mood — bipolar",
    "chronic_illness": "Chronic illness",
    "loneliness": "Loneliness",
}

# Bordin's dimensions of the working alliance (events.SUBSCALES), lower-case: they sit inside sentences
# ("the agreement on goals fell").
DIMENSION_LABELS = {
    "goal": "agreement on goals",
    "task": "collaboration on tasks",
    "bond": "emotional bond",
}

MODALITY_LABELS = {
    "in_person": "In person",
    "telehealth": "Telehealth",
    "either": "In person or telehealth",
}

URGENCY_LABELS = {"routine": "Routine", "soon": "Soon", "urgent": "Urgent"}
SEVERITY_LABELS = {"low": "Low", "medium": "Medium", "high": "High"}

ALERT_KIND_LABELS = {
    "change": "Fell against the client's usual level",
    "level": "Stayed low",
    "exit_interview": "Exit interview",
}

# Scoring's alert rules (services/scoring/domain/alerting.py), named by what they noticed.
RULE_LABELS = {
    "rupture": "Sudden fall",
    "sustained_decline": "Falling over several sessions",
    "reliable_drop": "Reliable drop",
    "drop_vs_previous": "Drop since the last session",
    "below_cutoff": "Below the instrument's cutoff",
    "persistently_low": "Low for several sessions",
    "exit_interview_low_fit": "Poor fit in the exit interview",
    # Not a scoring rule: why notify tells a counselor of a new client (services/notify/domain.py).
    "referral_accepted": "Referral accepted",
}

# Why a referral was asked for, and why one was declined (events: referral.requested, referral.decided).
REFERRAL_REASON_LABELS = {
    "intake": "New client",
    "exit_interview": "Exit interview",
    "alliance_decline": "Alliance declining",
}
DECLINE_REASON_LABELS = {
    "no_suitable_candidate": "No suitable counselor",
    "client_declined": "The client declined",
    "clinical_judgement": "Clinical judgement",
    "other": "Something else",
}
DECISION_LABELS = {"accepted": "Accepted", "declined": "Declined", "superseded": "Superseded"}
# The parts of a candidate's score, and why counselors were not candidates (services/referral/domain.py
# PARTS, EXCLUSIONS).
SCORE_PART_LABELS = {
    "specialty": "Specialty",
    "strength": "Measured strength",
    "preference": "Preferred gender",
    "capacity": "Free places",
    "clinic": "Same clinic",
}
EXCLUSION_LABELS = {
    "current_counselor": "The client's counselor",
    "other_organisation": "Another organisation",
    "inactive": "Inactive",
    "not_accepting": "Not taking new clients",
    "no_capacity": "No free place",
    "language": "Does not speak the language asked for",
    "modality": "Not at this clinic in the modality asked for",
}

ROLE_LABELS = {
    "admin": "Administrator",
    "supervisor": "Supervisor",
    "counselor": "Counselor",
    "front_desk": "Front desk",
}

GENDER_LABELS = {"female": "Female", "male": "Male", "nonbinary": "Non-binary"}

# How an accepted referral worked out (services/referral/outcomes.py OUTCOME_STATUSES).
OUTCOME_LABELS = {
    "following": "Still in the first sessions",
    "improved": "Alliance improved",
    "not_improved": "Alliance not improved",
    "no_baseline": "Nothing earlier to compare",
}

# Preferred days and times captured at intake (services/intake/domain.py DAYS, TIMES).
DAY_LABELS = {
    "mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
    "sat": "Saturday", "sun": "Sunday",
}
TIME_LABELS = {"morning": "Morning", "afternoon": "Afternoon", "evening": "Evening"}

# Languages are ISO 639-1 codes; the ones clinics commonly list. Others read as the code itself.
LANGUAGE_LABELS = {
    "ar": "Arabic", "bn": "Bengali", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
    "fa": "Persian", "fr": "French", "hi": "Hindi", "it": "Italian", "ja": "Japanese", "ko": "Korean",
    "nl": "Dutch", "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "so": "Somali", "sw": "Swahili",
    "tl": "Tagalog", "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}

# Repair actions (events.REPAIR_ACTIONS) keep their wording in services/common/repair.py, beside the
# suggestions they answer.
TABLES: tuple[Mapping[str, str], ...] = (
    CONCERN_LABELS, DIMENSION_LABELS, MODALITY_LABELS, URGENCY_LABELS, SEVERITY_LABELS, ALERT_KIND_LABELS,
    RULE_LABELS, REFERRAL_REASON_LABELS, DECLINE_REASON_LABELS, DECISION_LABELS, SCORE_PART_LABELS,
    EXCLUSION_LABELS, ROLE_LABELS, GENDER_LABELS,
    DAY_LABELS, TIME_LABELS, LANGUAGE_LABELS, ACTION_LABELS, OUTCOME_LABELS,
)
# One flat mapping: a code shared by two tables (exit_interview, other) has one wording for both.
WORDS: dict[str, str] = {code: label for table in TABLES for code, label in table.items()}


def label(code: str) -> str:
    """One code in words; an unknown code with underscores as spaces."""
    return WORDS.get(code, code.replace("_", " "))


def words(value: str | Iterable[str] | None) -> str:
    """The Jinja filter: a code, or a list of codes joined with commas, in words; nothing for None."""
    if value is None:
        return ""
    if isinstance(value, str):
        return label(value)
    return ", ".join(label(code) for code in value)
