import pytest

from services.common.config import Settings


def test_environment_overrides_defaults_and_explicit_overrides_win():
    env = {"RAPPORT_KAFKA_BOOTSTRAP": "k:1", "RAPPORT_TOPIC_PARTITIONS": "6", "RAPPORT_OUTBOX_GRACE_S": "0.5"}
    settings = Settings.load("scoring", {"topic_partitions": 12}, environ=env)
    assert settings.kafka_bootstrap == "k:1"
    assert settings.outbox_grace_s == 0.5
    assert settings.topic_partitions == 12
    assert settings.database == "rapport_scoring"


def test_a_number_that_is_not_one_names_the_variable():
    with pytest.raises(ValueError, match="RAPPORT_TOPIC_PARTITIONS"):
        Settings.load("intake", environ={"RAPPORT_TOPIC_PARTITIONS": "three"})
