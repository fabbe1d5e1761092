"""docker-compose.yml agrees with the code: the modules it runs exist, the settings it passes are real
Settings fields, ports and health checks line up, and it runs the same processes as deploy/local/Procfile.

Static checks only: nothing here starts a container or opens a socket.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import yaml

from services.common.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROCFILE = ROOT / "deploy" / "local" / "Procfile"
DOCKERFILE = ROOT / "Dockerfile"

SERVICES = ("intake", "scoring", "referral", "notify")
API_PORTS = {"intake": 8001, "scoring": 8002, "referral": 8003, "notify": 8004}
APIS = tuple(f"{name}-api" for name in SERVICES)
WORKERS = tuple(f"{name}-worker" for name in SERVICES)
INFRA = ("kafka", "mongo")
# Read by deploy/gunicorn.conf.py rather than by Settings.
GUNICORN_VARS = {"RAPPORT_WEB_WORKERS", "RAPPORT_WEB_THREADS"}


# --- helpers ----------------------------------------------------------------------------------------

def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_services() -> dict[str, dict]:
    return load_compose()["services"]


def with_defaults(text: str) -> str:
    """Replace Compose's `${VAR:-default}` / `${VAR-default}` with the default, as on a bare machine."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", text)


def argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def option(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def python_module(args: list[str]) -> str | None:
    """X of `python -m X ...`, else None."""
    if Path(args[0]).name.startswith("python") and len(args) > 2 and args[1] == "-m":
        return args[2]
    return None


def gunicorn_app(args: list[str]) -> tuple[str, str] | None:
    """(module, callable) of `gunicorn ... 'pkg.mod:factory()'`, else None."""
    if Path(args[0]).name != "gunicorn":
        return None
    module, _, target = args[-1].partition(":")
    return module, target.removesuffix("()")


def process_module(args: list[str]) -> str:
    """The module a command runs: the `-m` module or gunicorn's app module."""
    module = python_module(args)
    if module is None and gunicorn_app(args) is not None:
        module = gunicorn_app(args)[0]
    assert module is not None, f"neither `python -m` nor gunicorn: {args}"
    return module


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def published_ports(service: dict) -> list[tuple[int, int]]:
    """(host port, container port) pairs of the short syntax `[ip:]host:container`, defaults applied."""
    pairs = []
    for spec in service.get("ports", []):
        parts = with_defaults(str(spec)).split("/")[0].split(":")
        pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


def healthcheck_command(service: dict) -> str:
    test = service.get("healthcheck", {}).get("test")
    assert test, "no healthcheck test"
    return " ".join(test[1:]) if isinstance(test, list) else test


def depends_on(service: dict) -> dict[str, str | None]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: None for name in deps}
    return {name: (spec or {}).get("condition") for name, spec in deps.items()}


def procfile_commands() -> dict[str, list[str]]:
    commands = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = shlex.split(with_defaults(command))
    return commands


def settings_env_vars() -> set[str]:
    return {f"RAPPORT_{f.name.upper()}" for f in dataclasses.fields(Settings) if f.name != "service"}


# --- the service set --------------------------------------------------------------------------------

def test_compose_has_every_api_worker_and_the_infrastructure():
    services = compose_services()
    for name in (*APIS, *WORKERS, *INFRA, "topics"):
        assert name in services, f"{name} missing from docker-compose.yml"


def test_no_obsolete_version_key():
    assert "version" not in load_compose()


@pytest.mark.parametrize("name", (*APIS, *WORKERS, "topics"))
def test_app_services_build_the_project_image(name):
    service = compose_services()[name]
    build = service.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    assert context in (".", "./"), f"{name} does not build ./Dockerfile"
    assert "command" in service, f"{name} relies on the image's default command"


# --- commands name real code ------------------------------------------------------------------------

@pytest.mark.parametrize("name", WORKERS)
def test_worker_command_runs_an_existing_module(name):
    args = argv(compose_services()[name]["command"])
    module = python_module(args)
    assert module == f"services.{name.removesuffix('-worker')}.worker"
    assert importlib.util.find_spec(module) is not None, f"{module} not found"


@pytest.mark.parametrize("name", APIS)
def test_api_command_serves_an_existing_app_factory(name):
    args = argv(compose_services()[name]["command"])
    app = gunicorn_app(args)
    assert app is not None, f"{name} is not served by gunicorn: {args}"
    module_name, factory = app
    assert module_name == f"services.{name.removesuffix('-api')}.app"
    module = importlib.import_module(module_name)
    assert callable(getattr(module, factory, None)), f"{module_name} has no {factory}"
    assert (ROOT / option(args, "-c")).is_file(), "gunicorn config file missing"


def test_topics_service_runs_the_cli_ensure_topics_command(capsys):
    args = argv(compose_services()["topics"]["command"])
    module_name = python_module(args)
    assert module_name is not None and importlib.util.find_spec(module_name) is not None
    module = importlib.import_module(module_name)
    assert callable(getattr(module, "main", None)), f"{module_name} has no main"
    # The subcommand exists: its --help exits 0 without touching the broker.
    with pytest.raises(SystemExit) as exit_info:
        module.main([*args[3:], "--help"])
    assert exit_info.value.code == 0


# --- ports and health -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", APIS)
def test_api_publishes_its_default_port_and_binds_the_same_one(name):
    service = compose_services()[name]
    port = API_PORTS[name.removesuffix("-api")]
    assert published_ports(service) == [(port, port)]
    bind = option(argv(service["command"]), "-b")
    assert bind == f"0.0.0.0:{port}", f"{name} binds {bind}; it must listen on all interfaces in its container"


@pytest.mark.parametrize("name", APIS)
def test_api_healthcheck_asks_readyz_with_python(name):
    service = compose_services()[name]
    port = API_PORTS[name.removesuffix("-api")]
    check = healthcheck_command(service)
    assert "urllib.request" in check and "curl" not in check  # python:3.11-slim has no curl
    assert f"127.0.0.1:{port}/readyz" in check or f"localhost:{port}/readyz" in check


def test_kafka_and_mongo_have_healthchecks():
    services = compose_services()
    assert "kafka-broker-api-versions" in healthcheck_command(services["kafka"])
    assert "ping" in healthcheck_command(services["mongo"])


@pytest.mark.parametrize("name", (*APIS, *WORKERS))
def test_long_running_services_wait_for_healthy_infrastructure_and_topics(name):
    service = compose_services()[name]
    deps = depends_on(service)
    assert deps.get("kafka") == "service_healthy"
    assert deps.get("mongo") == "service_healthy"
    assert deps.get("topics") == "service_completed_successfully"
    assert service.get("restart") == "unless-stopped"


def test_topics_waits_for_a_healthy_broker_and_exits():
    topics = compose_services()["topics"]
    assert depends_on(topics).get("kafka") == "service_healthy"
    assert topics.get("restart", "no") == "no", "a one-shot service must not be restarted"


# --- configuration ----------------------------------------------------------------------------------

def test_every_rapport_variable_is_a_setting_or_a_gunicorn_knob():
    known = settings_env_vars() | GUNICORN_VARS
    for name, service in compose_services().items():
        unknown = {key for key in env_of(service) if key.startswith("RAPPORT_")} - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which nothing reads"


def test_gunicorn_knobs_are_read_by_the_gunicorn_config():
    config = (ROOT / "deploy" / "gunicorn.conf.py").read_text()
    for var in GUNICORN_VARS:
        assert var in config


@pytest.mark.parametrize("name", (*APIS, *WORKERS, "topics"))
def test_app_services_reach_the_compose_broker_and_database(name):
    services = compose_services()
    env = env_of(services[name])
    bootstrap = env.get("RAPPORT_KAFKA_BOOTSTRAP")
    advertised = env_of(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert bootstrap and f"//{bootstrap}" in advertised, f"{bootstrap} is not what kafka advertises"
    assert env.get("RAPPORT_MONGO_URI", "").startswith("mongodb://mongo:27017")


def test_kafka_leaves_topic_creation_to_the_topics_service():
    env = env_of(compose_services()["kafka"])
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]


# --- the local runtime and the image ----------------------------------------------------------------

def test_procfile_runs_the_same_app_and_worker_modules_as_compose():
    services = compose_services()
    compose_modules = {process_module(argv(services[name]["command"])) for name in (*APIS, *WORKERS)}
    procfile = procfile_commands()
    procfile_modules = {process_module(procfile[name]) for name in (*APIS, *WORKERS)}
    assert procfile_modules == compose_modules
    assert len(compose_modules) == len(APIS) + len(WORKERS)


def test_image_contains_what_the_commands_use():
    copied = " ".join(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY "))
    for path in ("pyproject.toml", "services", "deploy/gunicorn.conf.py"):
        assert path in copied, f"the Dockerfile does not copy {path}"
