"""docker-compose.yml (with its override, env files and proxy) agrees with the code: the modules it runs exist,
the settings it passes are variables the code reads and parse, ports, health checks and the proxy's routes
line up, and it runs the same processes as deploy/local/Procfile.

Static checks only: nothing here starts a container or opens a socket. tests/unit/test_k8s.py reuses the
helpers (command, environment and nginx parsing) for the Kubernetes manifests.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import gunicorn.config
import pytest
import yaml

from services.common.config import Settings
from services.notify.adapters import config as notify_config
from services.referral.adapters import config as referral_config
from services.referral.domain import MatchingConfig

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
OVERRIDE_FILE = ROOT / "docker-compose.override.yml"
PROCFILE = ROOT / "deploy" / "local" / "Procfile"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
ENV_DIR = ROOT / "deploy" / "env"
PROXY_DIR = ROOT / "deploy" / "proxy"
NGINX_CONF = PROXY_DIR / "nginx.conf"
# Where nginx.conf includes the upstreams from; compose and Kubernetes mount their own file there.
UPSTREAMS_MOUNT = "/etc/nginx/rapport/upstreams.conf"

SERVICES = ("intake", "scoring", "referral", "notify")
API_PORTS = {"intake": 8001, "scoring": 8002, "referral": 8003, "notify": 8004}
# The path prefix of each service behind the proxy; intake owns the root.
PREFIXES = {"intake": "", "scoring": "/scoring", "referral": "/referral", "notify": "/notify"}
APIS = tuple(f"{name}-api" for name in SERVICES)
WORKERS = tuple(f"{name}-worker" for name in SERVICES)
INFRA = ("kafka", "mongo")
APP_SERVICES = (*APIS, *WORKERS, "topics")
# Read by deploy/gunicorn.conf.py rather than by Settings.
GUNICORN_VARS = {"RAPPORT_WEB_WORKERS", "RAPPORT_WEB_THREADS"}
# Variables of the app containers that are not Rapport's: gunicorn's trusted proxies, and the directory of
# prometheus_client's multiprocess mode.
FOREIGN_APP_VARS = {"FORWARDED_ALLOW_IPS", "PROMETHEUS_MULTIPROC_DIR"}
# A secret that passes Settings' checks, to load the example env files as a deployer would have filled them.
FILLED_IN_SECRET = "x" * 48


# --- helpers: commands, environment, settings --------------------------------------------------------

def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_services() -> dict[str, dict]:
    return load_compose()["services"]


def override_services() -> dict[str, dict]:
    return yaml.safe_load(OVERRIDE_FILE.read_text())["services"]


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


def assert_runs_existing_code(args: list[str]) -> None:
    """`python -m X` names an importable module; gunicorn's 'pkg.mod:factory()' names a callable that exists."""
    app = gunicorn_app(args)
    if app is not None:
        module_name, factory = app
        module = importlib.import_module(module_name)
        assert callable(getattr(module, factory, None)), f"{module_name} has no {factory}"
        assert (ROOT / option(args, "-c")).is_file(), "gunicorn config file missing"
        return
    module_name = python_module(args)
    assert module_name is not None, f"neither `python -m` nor gunicorn: {args}"
    assert importlib.util.find_spec(module_name) is not None, f"{module_name} not found"


def assert_runs_ensure_topics(args: list[str]) -> None:
    """The command is `python -m <cli> ensure-topics ...` and the CLI accepts those arguments."""
    module_name = python_module(args)
    assert module_name is not None and importlib.util.find_spec(module_name) is not None
    assert args[3] == "ensure-topics", f"{args} does not run ensure-topics"
    module = importlib.import_module(module_name)
    assert callable(getattr(module, "main", None)), f"{module_name} has no main"
    # Its options parse: --help after them exits 0 without touching the broker.
    with pytest.raises(SystemExit) as exit_info:
        module.main([*args[3:], "--help"])
    assert exit_info.value.code == 0


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=value: {line!r}"
            values[key.strip()] = value
    return values


def settings_env_vars() -> set[str]:
    return {f"RAPPORT_{f.name.upper()}" for f in dataclasses.fields(Settings) if f.name != "service"}


def known_rapport_vars() -> set[str]:
    """Every RAPPORT_* variable some code reads: the shared Settings, notify's and referral's own settings
    (derived from their dataclasses and prefixes) and gunicorn's knobs."""
    notify = {f"{notify_config.PREFIX}{f.name.upper()}" for f in dataclasses.fields(notify_config.NotifySettings)}
    referral = {f"{referral_config.PREFIX}{f.name.upper()}" for f in dataclasses.fields(MatchingConfig)}
    return settings_env_vars() | notify | referral | GUNICORN_VARS


def assert_env_is_read_by_the_code(where: str, env: dict[str, str], foreign: set[str] = frozenset()) -> None:
    known = known_rapport_vars()
    unknown = {key for key in env if key.startswith("RAPPORT_") and key not in known}
    assert not unknown, f"{where} sets {sorted(unknown)}, which nothing reads"
    others = {key for key in env if not key.startswith("RAPPORT_")} - foreign
    assert not others, f"{where} sets {sorted(others)}, which no Rapport process reads"


def assert_env_loads(where: str, env: dict[str, str]) -> None:
    """Every setting parses (numbers are numbers, the secret is acceptable) for every service."""
    for service in SERVICES:
        Settings.load(service, environ=env)
    notify_config.NotifySettings.load(environ=env)
    referral_config.load_matching_config(env)


def filled_in(env: dict[str, str]) -> dict[str, str]:
    """An example env file as a deployer leaves it: every CHANGE-ME replaced."""
    return {k: v.replace("CHANGE-ME", FILLED_IN_SECRET) for k, v in env.items()}


def container_env(name: str) -> dict[str, str]:
    """What an app container of docker-compose.yml gets: the filled-in env file, then `environment:`."""
    return {**filled_in(read_env_file(ENV_DIR / "rapport.env.example")), **env_of(compose_services()[name])}


def published_ports(service: dict) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of the short syntax `[ip:]host:container`, defaults applied."""
    triples = []
    for spec in service.get("ports", []):
        parts = with_defaults(str(spec)).split("/")[0].split(":")
        triples.append((parts[-3] if len(parts) > 2 else "0.0.0.0", int(parts[-2]), int(parts[-1])))
    return triples


def healthcheck_command(service: dict) -> str:
    test = service.get("healthcheck", {}).get("test")
    assert test, "no healthcheck test"
    return " ".join(test[1:]) if isinstance(test, list) else test


def duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text)))


def depends_on(service: dict) -> dict[str, str | None]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: None for name in deps}
    return {name: (spec or {}).get("condition") for name, spec in deps.items()}


def procfile_commands() -> dict[str, list[str]]:
    """name -> argv of each Procfile line, without leading `VAR=value` assignments."""
    commands = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            args = shlex.split(with_defaults(command))
            while args and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", args[0]):
                args.pop(0)
            commands[name.strip()] = args
    return commands


# --- helpers: nginx configuration --------------------------------------------------------------------

@dataclasses.dataclass
class Directive:
    name: str
    args: list[str]
    block: list["Directive"] | None = None

    def all(self, name: str) -> list["Directive"]:
        return [d for d in self.block or [] if d.name == name]

    def values(self, name: str) -> list[list[str]]:
        return [d.args for d in self.all(name)]


def parse_nginx(text: str) -> Directive:
    """nginx's configuration syntax as a tree: directives with arguments, `;` or a `{ }` block."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|#[^\n]*|[{};]|[^\s{};]+', text)
    tokens = [t[1:-1] if t[0] in "\"'" else t for t in tokens if not t.startswith("#")]
    root, stack, words = Directive("main", [], []), [], []
    current = root
    for token in tokens:
        if token == ";":
            current.block.append(Directive(words[0], words[1:]))
            words = []
        elif token == "{":
            child = Directive(words[0], words[1:], [])
            current.block.append(child)
            stack.append(current)
            current, words = child, []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            current = stack.pop()
        else:
            words.append(token)
    assert not stack and not words, "unbalanced braces in the nginx configuration"
    return root


def nginx_http() -> Directive:
    (http,) = parse_nginx(NGINX_CONF.read_text()).all("http")
    return http


def tls_server(http: Directive) -> Directive:
    servers = [s for s in http.all("server") if any("ssl" in args for args in s.values("listen"))]
    assert len(servers) == 1, "one TLS server block expected"
    return servers[0]


def upstream_servers(path: Path) -> dict[str, list[str]]:
    """upstream name -> its `server` addresses, in one upstreams file."""
    root = parse_nginx(path.read_text())
    return {u.args[0]: [args[0] for args in u.values("server")] for u in root.all("upstream")}


def proxy_routes() -> dict[str, str]:
    """location prefix -> upstream name it proxies to, in the TLS server."""
    routes = {}
    for location in tls_server(nginx_http()).all("location"):
        if len(location.args) == 1 and location.values("proxy_pass"):
            (target,) = location.values("proxy_pass")
            routes[location.args[0]] = target[0].removeprefix("http://")
    return routes


# --- the service set ---------------------------------------------------------------------------------

def test_compose_has_every_api_worker_the_infrastructure_and_the_proxy():
    services = compose_services()
    for name in (*APIS, *WORKERS, *INFRA, "topics", "proxy"):
        assert name in services, f"{name} missing from docker-compose.yml"


def test_no_obsolete_version_key():
    assert "version" not in load_compose()
    assert "version" not in yaml.safe_load(OVERRIDE_FILE.read_text())


def test_the_override_only_adds_to_services_that_exist():
    assert set(override_services()) <= set(compose_services())


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_build_the_project_image(name):
    service = compose_services()[name]
    build = service.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    assert context in (".", "./"), f"{name} does not build ./Dockerfile"
    assert "command" in service, f"{name} relies on the image's default command"


def test_third_party_images_are_pinned_to_a_version():
    for name, service in compose_services().items():
        if "image" in service and "build" not in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image} to a version"
    assert compose_services()["kafka"]["image"].startswith("apache/kafka:4.")


# --- commands name real code -------------------------------------------------------------------------

@pytest.mark.parametrize("name", WORKERS)
def test_worker_command_runs_an_existing_module(name):
    args = argv(compose_services()[name]["command"])
    assert python_module(args) == f"services.{name.removesuffix('-worker')}.entrypoints.worker"
    assert_runs_existing_code(args)


@pytest.mark.parametrize("name", APIS)
def test_api_command_serves_an_existing_app_factory(name):
    args = argv(compose_services()[name]["command"])
    assert gunicorn_app(args) is not None, f"{name} is not served by gunicorn: {args}"
    assert gunicorn_app(args)[0] == f"services.{name.removesuffix('-api')}.entrypoints.app"
    assert_runs_existing_code(args)


def test_topics_service_runs_the_cli_ensure_topics_command():
    assert_runs_ensure_topics(argv(compose_services()["topics"]["command"]))


# --- ports and health --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", APIS)
def test_api_binds_its_default_port_on_all_interfaces(name):
    port = API_PORTS[name.removesuffix("-api")]
    bind = option(argv(compose_services()[name]["command"]), "-b")
    assert bind == f"0.0.0.0:{port}", f"{name} binds {bind}; it must listen on all interfaces in its container"


def test_only_the_proxy_is_published_by_the_production_file():
    published = {name: published_ports(s) for name, s in compose_services().items() if s.get("ports")}
    assert set(published) == {"proxy"}, f"{sorted(published)} publish ports; only the proxy should"
    assert sorted((host, container) for _, host, container in published["proxy"]) == [(80, 8080), (443, 8443)]


@pytest.mark.parametrize("name", APIS)
def test_the_override_publishes_each_api_on_loopback_at_its_default_port(name):
    port = API_PORTS[name.removesuffix("-api")]
    assert published_ports(override_services()[name]) == [("127.0.0.1", port, port)]


def test_the_override_publishes_nothing_beyond_loopback():
    for name, service in override_services().items():
        for ip, _, _ in published_ports(service):
            assert ip == "127.0.0.1", f"{name} is published on {ip}"


@pytest.mark.parametrize("name", APIS)
def test_api_healthcheck_asks_readyz_with_python_and_waits_long_enough(name):
    service = compose_services()[name]
    port = API_PORTS[name.removesuffix("-api")]
    check = healthcheck_command(service)
    assert "urllib.request" in check and "curl" not in check  # python:3.11-slim has no curl
    assert f"127.0.0.1:{port}/readyz" in check
    # /readyz may take ~5 s when the database or the broker is away (their timeouts): that is an answer
    # (503), not a hung process, so neither the request nor the check may give up before it.
    (request_timeout,) = map(float, re.findall(r"timeout=(\d+(?:\.\d+)?)", check))
    assert 5 < request_timeout < duration_s(service["healthcheck"]["timeout"])


@pytest.mark.parametrize("name", WORKERS)
def test_worker_serves_probes_on_all_interfaces_and_its_healthcheck_asks_readyz(name):
    service = compose_services()[name]
    settings = Settings.load(name.removesuffix("-worker"), environ=container_env(name))
    assert settings.worker_http_port > 0, "the worker's probe server is off"
    assert settings.worker_http_host == "0.0.0.0", "the probe server must listen beyond the container's loopback"
    check = healthcheck_command(service)
    assert f"127.0.0.1:{settings.worker_http_port}/readyz" in check
    (request_timeout,) = map(float, re.findall(r"timeout=(\d+(?:\.\d+)?)", check))
    assert request_timeout < duration_s(service["healthcheck"]["timeout"])


def test_the_image_exposes_the_ports_the_processes_listen_on():
    exposed = {int(p) for line in DOCKERFILE.read_text().splitlines() if line.startswith("EXPOSE ")
               for p in line.split()[1:]}
    worker_port = int(env_of(compose_services()["scoring-worker"])["RAPPORT_WORKER_HTTP_PORT"])
    assert exposed == {*API_PORTS.values(), worker_port}


def test_kafka_and_mongo_have_healthchecks():
    services = compose_services()
    assert "kafka-broker-api-versions" in healthcheck_command(services["kafka"])
    assert "isWritablePrimary" in healthcheck_command(services["mongo"])


@pytest.mark.parametrize("name", (*APIS, *WORKERS))
def test_long_running_services_wait_for_healthy_infrastructure_and_topics(name):
    service = compose_services()[name]
    deps = depends_on(service)
    assert deps.get("kafka") == "service_healthy"
    assert deps.get("mongo") == "service_healthy"
    assert deps.get("topics") == "service_completed_successfully"
    assert service.get("restart") == "unless-stopped"
    assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_topics_waits_for_a_healthy_broker_and_exits():
    topics = compose_services()["topics"]
    assert depends_on(topics).get("kafka") == "service_healthy"
    assert topics.get("restart", "no") == "no", "a one-shot service must not be restarted"


def test_the_proxy_starts_once_every_api_is_healthy_and_checks_itself():
    proxy = compose_services()["proxy"]
    assert depends_on(proxy) == {name: "service_healthy" for name in APIS}
    (check_path,) = re.findall(r"127\.0\.0\.1:8080(/\S*)", healthcheck_command(proxy))
    plain = [s for s in nginx_http().all("server") if ["8080"] in s.values("listen")]
    assert plain and any(loc.args == ["=", check_path] for loc in plain[0].all("location"))


# --- MongoDB: a replica set of one --------------------------------------------------------------------

def test_mongo_runs_a_replica_set_that_the_healthcheck_initiates_under_the_name_clients_use():
    mongo = compose_services()["mongo"]
    replica_set = option(argv(mongo["command"]), "--replSet")
    check = healthcheck_command(mongo)
    assert "rs.initiate" in check and f"_id: '{replica_set}'" in check
    assert "host: 'mongo:27017'" in check, "the member must be named as the other containers reach it"
    uri = read_env_file(ENV_DIR / "rapport.env.example")["RAPPORT_MONGO_URI"]
    assert uri.startswith("mongodb://") and "@mongo:27017/" in uri
    assert f"replicaSet={replica_set}" in uri


def test_mongo_credentials_of_the_examples_agree():
    mongo_env = read_env_file(ENV_DIR / "mongo.env.example")
    uri = read_env_file(ENV_DIR / "rapport.env.example")["RAPPORT_MONGO_URI"]
    user = mongo_env["MONGO_INITDB_ROOT_USERNAME"]
    assert uri.startswith(f"mongodb://{user}:{mongo_env['MONGO_INITDB_ROOT_PASSWORD']}@")
    assert "authSource=admin" in uri  # the root user lives in the admin database


# --- configuration -----------------------------------------------------------------------------------

def test_every_variable_of_the_app_services_is_read_by_the_code():
    for name in APP_SERVICES:
        assert_env_is_read_by_the_code(name, env_of(compose_services()[name]), FOREIGN_APP_VARS)


@pytest.mark.parametrize("example", sorted(p.name for p in ENV_DIR.glob("*.example")
                                           if p.name != "mongo.env.example"))
def test_every_variable_of_the_example_env_files_is_read_by_the_code(example):
    assert_env_is_read_by_the_code(example, read_env_file(ENV_DIR / example))


def test_gunicorn_knobs_are_read_by_the_gunicorn_config():
    config = GUNICORN_CONF.read_text()
    for var in GUNICORN_VARS:
        assert var in config


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_read_the_env_file_whose_example_exists(name):
    service = compose_services()[name]
    env_files = service.get("env_file")
    env_files = [env_files] if isinstance(env_files, str) else env_files
    assert env_files == ["deploy/env/rapport.env"]
    assert (ROOT / "deploy/env/rapport.env.example").is_file()
    assert (ROOT / "deploy/env/mongo.env.example").is_file()
    assert compose_services()["mongo"].get("env_file") == "deploy/env/mongo.env"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_run_in_production_and_refuse_the_placeholder_secret(name):
    example = read_env_file(ENV_DIR / "rapport.env.example")
    # Compose gives `environment:` precedence over the env file.
    env = {**example, **env_of(compose_services()[name])}
    assert env["RAPPORT_ENVIRONMENT"] == "production"
    with pytest.raises(ValueError, match="RAPPORT_JWT_SECRET"):
        Settings.load(name.split("-")[0] if name != "topics" else "ops", environ=env)
    assert_env_loads(name, container_env(name))


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_reach_the_compose_broker_and_database(name):
    services = compose_services()
    env = env_of(services[name])
    bootstrap = env.get("RAPPORT_KAFKA_BOOTSTRAP")
    advertised = env_of(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert bootstrap and f"//{bootstrap}" in advertised, f"{bootstrap} is not what kafka advertises"
    # One broker: topics the app creates cannot have more replicas than that.
    assert int(env["RAPPORT_TOPIC_REPLICATION"]) == 1


def test_kafka_leaves_topic_creation_to_the_topics_service_and_never_elects_an_unclean_leader():
    env = env_of(compose_services()["kafka"])
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"].lower() == "false"
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]


def test_data_lives_in_named_volumes():
    compose = load_compose()
    declared = set(compose["volumes"])
    for name in INFRA:
        named = {v.split(":")[0] for v in compose["services"][name]["volumes"] if not v.startswith(".")}
        assert named and named <= declared, f"{name} keeps its data outside a declared named volume"


# --- hardening ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", (*APP_SERVICES, "proxy"))
def test_app_and_proxy_containers_have_a_read_only_root_and_a_tmpfs(name):
    service = compose_services()[name]
    assert service.get("read_only") is True
    assert "/tmp" in service.get("tmpfs", [])
    assert service.get("cap_drop") == ["ALL"]


def test_the_image_runs_as_a_numeric_non_root_user_on_a_pinned_base():
    text = DOCKERFILE.read_text()
    (user,) = re.findall(r"^USER\s+(\S+)", text, re.M)
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric uid lets Kubernetes verify runAsNonRoot"
    (base,) = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-\S+", base), f"pin the base image to a patch release: {base}"


def test_the_image_installs_pinned_dependencies():
    dependencies = re.search(r"^dependencies = \[(.*?)\]", PYPROJECT.read_text(), re.S | re.M).group(1)
    for requirement in re.findall(r'"([^"]+)"', dependencies):
        assert "==" in requirement, f"{requirement} is not pinned"


def test_image_contains_what_the_commands_use():
    copied = " ".join(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY "))
    for path in ("pyproject.toml", "services", "deploy/gunicorn.conf.py"):
        assert path in copied, f"the Dockerfile does not copy {path}"
    allowed = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    for path in ("pyproject.toml", "services/", "deploy/gunicorn.conf.py"):
        assert f"!{path}" in allowed, f".dockerignore keeps {path} out of the build"


# --- the proxy: one origin ---------------------------------------------------------------------------

def test_the_proxy_mounts_files_that_exist_where_nginx_reads_them():
    mounts = {}
    for volume in compose_services()["proxy"]["volumes"]:
        source, target = volume.split(":")[:2]
        assert (ROOT / source).exists(), f"{source} does not exist"
        mounts[target] = source
    assert mounts["/etc/nginx/nginx.conf"] == "./deploy/proxy/nginx.conf"
    assert mounts[UPSTREAMS_MOUNT] == "./deploy/proxy/upstreams.docker.conf"
    assert [UPSTREAMS_MOUNT] in nginx_http().values("include")
    (tls_dir,) = [target for target, source in mounts.items() if source == "./deploy/proxy/tls"]
    tls = tls_server(nginx_http())
    for directive in ("ssl_certificate", "ssl_certificate_key"):
        (path,) = tls.values(directive)
        assert path[0].startswith(tls_dir + "/")


def test_the_proxy_routes_each_prefix_to_its_service():
    routes = proxy_routes()
    expected = {(PREFIXES[s] + "/"): f"rapport_{s}" for s in SERVICES}
    assert routes == expected


@pytest.mark.parametrize("upstreams_file", ("upstreams.docker.conf", "upstreams.k8s.conf"))
def test_each_upstream_is_the_api_of_its_service_at_its_port(upstreams_file):
    servers = upstream_servers(PROXY_DIR / upstreams_file)
    for service in SERVICES:
        assert servers[f"rapport_{service}"] == [f"{service}-api:{API_PORTS[service]}"]


def test_the_upstream_names_are_compose_services_listening_on_those_ports():
    services = compose_services()
    for addresses in upstream_servers(PROXY_DIR / "upstreams.docker.conf").values():
        host, port = addresses[0].split(":")
        assert option(argv(services[host]["command"]), "-b").endswith(f":{port}")


def test_the_proxy_tells_gunicorn_the_prefix_and_gunicorn_trusts_it():
    """Paths go upstream unchanged with SCRIPT_NAME = the prefix: gunicorn moves the prefix out of
    PATH_INFO, so the apps' unprefixed routes match and their url_for() links keep the prefix."""
    http = nginx_http()
    tls = tls_server(http)
    headers = {args[0]: args[1] for args in tls.values("proxy_set_header")}
    variable = headers["SCRIPT_NAME"]
    (mapping,) = [m for m in http.all("map") if m.args[1] == variable]
    assert mapping.args[0] == "$request_uri", "match what goes upstream: the raw request URI"
    table = {d.name: d.args[0] for d in mapping.block}
    for service, prefix in PREFIXES.items():
        if prefix:
            (pattern,) = [k for k, v in table.items() if v == prefix]
            assert re.search(pattern.removeprefix("~"), f"{prefix}/inbox?x=1")
            assert not re.search(pattern.removeprefix("~"), f"{prefix}x/")
    assert table["default"] == ""  # intake: no header, no prefix
    # Locations forward the path as it came (no URI part after the upstream name).
    assert all("/" not in target for target in proxy_routes().values())
    assert "SCRIPT_NAME" in gunicorn.config.ForwarderHeaders.default
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert "X-FORWARDED-PROTO" in gunicorn.config.SecureSchemeHeader.default
    for name in APIS:
        assert env_of(compose_services()[name])["FORWARDED_ALLOW_IPS"]


def test_the_public_urls_of_the_example_are_one_origin_with_the_proxy_prefixes():
    env = read_env_file(ENV_DIR / "rapport.env.example")
    origin = env["RAPPORT_INTAKE_URL"]
    assert origin.startswith("https://")
    for service, prefix in PREFIXES.items():
        assert env[f"RAPPORT_{service.upper()}_URL"] == origin + prefix


def test_the_proxy_hides_metrics_from_the_internet():
    blocked = [loc for loc in tls_server(nginx_http()).all("location")
               if loc.args[0] == "~" and loc.values("return") == [["404"]]]
    assert blocked, "no location refuses /metrics"
    pattern = blocked[0].args[1]
    for prefix in PREFIXES.values():
        assert re.search(pattern, f"{prefix}/metrics")
    assert not re.search(pattern, "/scoring/metrics-overview")


def test_plain_http_only_redirects_to_https():
    plain = [s for s in nginx_http().all("server") if ["8080"] in s.values("listen")]
    (catch_all,) = [loc for loc in plain[0].all("location") if loc.args == ["/"]]
    assert catch_all.values("return") == [["308", "https://$host$request_uri"]]
    assert not any(loc.values("proxy_pass") for loc in plain[0].all("location"))


# --- the local runtime -------------------------------------------------------------------------------

def test_procfile_runs_the_same_app_and_worker_modules_as_compose():
    services = compose_services()
    compose_modules = {process_module(argv(services[name]["command"])) for name in (*APIS, *WORKERS)}
    procfile = procfile_commands()
    procfile_modules = {process_module(procfile[name]) for name in (*APIS, *WORKERS)}
    assert procfile_modules == compose_modules
    assert len(compose_modules) == len(APIS) + len(WORKERS)
