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


def test_kafka_clients_connect_with_tls_and_the_services_own_sasl_principal():
    settings = Settings.load("scoring", environ={
        "RAPPORT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "RAPPORT_KAFKA_SSL_CAFILE": "/etc/rapport/kafka-ca.pem",
        "RAPPORT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "RAPPORT_KAFKA_SASL_USERNAME": "scoring",
        "RAPPORT_KAFKA_SASL_PASSWORD": "from-a-secret"})

    assert settings.kafka_client_options == {
        "bootstrap_servers": "127.0.0.1:9092", "security_protocol": "SASL_SSL",
        "ssl_cafile": "/etc/rapport/kafka-ca.pem", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "scoring", "sasl_plain_password": "from-a-secret"}
    assert Settings.load("scoring", environ={}).kafka_client_options == {
        "bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("environ, named", [
    ({"RAPPORT_KAFKA_SECURITY_PROTOCOL": "TLS"}, "RAPPORT_KAFKA_SECURITY_PROTOCOL"),
    ({"RAPPORT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "RAPPORT_KAFKA_SASL_USERNAME": "scoring"},
     "RAPPORT_KAFKA_SASL_PASSWORD"),
])
def test_an_incomplete_kafka_security_setting_refuses_to_start(environ, named):
    with pytest.raises(ValueError, match=named):
        Settings.load("scoring", environ=environ)
