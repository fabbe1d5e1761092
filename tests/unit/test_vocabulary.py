import pytest

from services.common.events import CONCERNS, MODALITIES, REPAIR_ACTIONS, SEVERITIES, SUBSCALES, URGENCIES
from services.common.vocabulary import TABLES, WORDS, words
from services.intake.domain import DAYS, GENDERS, STAFF_ROLES, TIMES
from services.referral.domain import DECLINE_REASONS
from services.scoring.domain.alerting import EXIT_INTERVIEW_RULE, RULES


@pytest.mark.parametrize("code", [*CONCERNS, *MODALITIES, *SUBSCALES, *REPAIR_ACTIONS, *URGENCIES, *SEVERITIES,
                                  *DAYS, *TIMES, *GENDERS, *STAFF_ROLES, *DECLINE_REASONS, *RULES,
                                  EXIT_INTERVIEW_RULE])
def test_every_code_the_platform_stores_has_a_label_in_words(code):
    assert code in WORDS
    assert words(code) not in (code, code.replace("_", " ")), code


def test_the_dimensions_and_concerns_read_as_a_clinician_would_say_them():
    assert words("goal") == "agreement on goals"
    assert words("task") == "collaboration on tasks"
    assert words("bond") == "emotional bond"
    assert words("ocd") == "OCD"
    assert words("mood_bipolar") == "Mood — bipolar"


def test_a_list_of_codes_reads_as_one_line_and_nothing_reads_as_nothing():
    assert words(["anxiety", "ocd"]) == "Anxiety, OCD"
    assert words([]) == ""
    assert words(None) == ""


def test_an_unknown_code_reads_as_itself_with_spaces():
    assert words("somatic_symptoms") == "somatic symptoms"


def test_a_code_in_two_tables_has_one_wording():
    # The flat mapping keeps the last table's label: two tables naming one code differently would hide one.
    for table in TABLES:
        for code, label in table.items():
            assert WORDS[code] == label, code


def test_the_service_app_factory_gives_templates_the_filter():
    from services.intake.entrypoints.app import create_app

    app = create_app({"kafka_bootstrap": "127.0.0.1:1", "mongo_uri": "mongodb://127.0.0.1:1/unused"})
    rendered = app.jinja_env.from_string("{{ 'bond'|words }} / {{ concerns|words }}").render(
        concerns=["mood_bipolar", "grief"])
    assert rendered == "emotional bond / Mood — bipolar, Grief and loss"
