"""deploy/k8s agrees with the code: one Deployment per process running existing modules, probes and metrics on
the ports the processes listen on, every variable one the code reads (and parses), workers no more than the
topics' partitions, every pod non-root with a read-only root filesystem and resources, kustomizations that
reference files that exist, and a proxy that routes the four prefixes to the four API Services.

Static checks with pyyaml only. The base is rendered here as kustomize does in the subset it uses: the four
services fill in the component deploy/k8s/base/service-template with their values.yaml through its replacements
(`replace` below); the overlays then apply their patches (`apply_patch` below; they only change scalars). When
kubectl or kustomize is installed, one more test compares that, field for field, with what they build.
"""
from __future__ import annotations

import copy
import os
import posixpath
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from services.common.config import Settings
from tests.unit.test_compose import (API_PORTS, DOCKERFILE, ENV_DIR, FOREIGN_APP_VARS, NGINX_CONF, PREFIXES,
                                     PROXY_DIR, ROOT, SERVICES, UPSTREAMS_MOUNT, argv, assert_env_is_read_by_the_code,
                                     compose_services,
                                     assert_env_loads, assert_runs_ensure_topics, assert_runs_existing_code,
                                     filled_in, gunicorn_app, nginx_http, option, parse_nginx, python_module,
                                     read_env_file, tls_server, upstream_servers)

K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = ("dev", "prod")
VARIANTS = ("base", *OVERLAYS)
APP_DEPLOYMENTS = tuple(f"{s}-{kind}" for s in SERVICES for kind in ("api", "worker"))
PROXY = "rapport-proxy"
CONFIG_MAP, SECRET = "rapport-config", "rapport-secrets"


# --- reading kustomizations -------------------------------------------------------------------------

def load_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path) -> dict:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def kustomization_dirs() -> list[Path]:
    return sorted(p.parent for p in [*K8S.rglob("kustomization.yaml"), PROXY_DIR / "kustomization.yaml"])


def generator_files(generator: dict) -> list[str]:
    """The files a config/secret generator reads (`key=path` or `path`)."""
    return [entry.partition("=")[2] or entry for entry in generator.get("files", [])] + generator.get("envs", [])


def referenced_paths(directory: Path) -> list[Path]:
    k = kustomization(directory)
    paths = [*k.get("resources", []), *k.get("components", []),
             *(p["path"] for p in k.get("patches", []) if "path" in p)]
    for generator in (*k.get("configMapGenerator", []), *k.get("secretGenerator", [])):
        paths += generator_files(generator)
    return [directory / p for p in paths]


def accumulate(directory: Path) -> list[dict]:
    """The objects of a kustomization of the base as kustomize accumulates them (generators aside): its resources,
    recursing into directories, then each component's resources, with the component's replacements applied to
    all of them. Local-config objects are still there: they are what the replacements read."""
    k = kustomization(directory)
    assert not {"namePrefix", "nameSuffix", "patches", "replicas", "replacements"} & set(k), \
        f"{directory.relative_to(ROOT)} transforms objects in a way this renderer ignores; use kubectl kustomize"
    docs = []
    for entry in k.get("resources", []):
        path = directory / entry
        docs += accumulate(path) if path.is_dir() else load_docs(path)
    for entry in k.get("components", []):
        component = kustomization(directory / entry)
        assert component["kind"] == "Component" and set(component) <= {"apiVersion", "kind", "resources",
                                                                       "replacements"}, entry
        docs += [d for name in component.get("resources", []) for d in load_docs(directory / entry / name)]
        for replacement in component.get("replacements", []):
            replace(docs, replacement)
    return docs


def resources_of(directory: Path) -> list[dict]:
    """Every object a kustomization declares (generators aside), without the local-config ones, which kustomize
    reads but does not output."""
    return [d for d in accumulate(directory)
            if d["metadata"].get("annotations", {}).get("config.kubernetes.io/local-config") != "true"]


def field_key(node: dict | list, segment: str) -> str | int:
    """One step of a kustomize fieldPath: `[name=api]` is the list item whose name is api, a number a list index,
    `[a.b/c]` a key with dots in it, anything else a key."""
    if segment.startswith("[") and "=" in segment:
        field, _, value = segment[1:-1].partition("=")
        (index,) = [i for i, item in enumerate(node) if item.get(field) == value]
        return index
    return int(segment) if isinstance(node, list) else segment.strip("[]")


def locate(doc: dict, field_path: str) -> tuple[dict | list, str | int]:
    """The container and key of a fieldPath's field in doc. Callers read the field before writing it, so a
    missing one raises: kustomize, too, creates none unless told to."""
    node, segments = doc, re.findall(r"\[[^\]]*\]|[^.\[]+", field_path)
    for segment in segments[:-1]:
        node = node[field_key(node, segment)]
    return node, field_key(node, segments[-1])


def selected(docs: list[dict], selector: dict) -> list[dict]:
    return [d for d in docs if selector.get("kind", d["kind"]) == d["kind"]
            and selector.get("name", d["metadata"]["name"]) == d["metadata"]["name"]]


def replace(docs: list[dict], replacement: dict) -> None:
    """A kustomize replacement, in the subset the component uses (anything else fails here rather than render
    differently): source and targets selected by kind and name, and a target's delimiter/index option, which
    replaces that part of the string. The target keeps its type: "8001" written over 0 is the number 8001."""
    source = replacement["source"]
    assert set(source) <= {"kind", "name", "fieldPath"}, source
    (origin,) = selected(docs, source)
    parent, key = locate(origin, source["fieldPath"])
    value = parent[key]
    assert isinstance(value, (str, int)) and not isinstance(value, bool), source
    for target in replacement["targets"]:
        options = target.get("options", {})
        assert set(target) <= {"select", "fieldPaths", "options"} and set(target["select"]) <= {"kind", "name"} \
            and set(options) <= {"delimiter", "index"}, target
        for doc in selected(docs, target["select"]):  # before the field paths: one of them may be the name
            for field_path in target["fieldPaths"]:
                parent, key = locate(doc, field_path)
                current = parent[key]
                assert isinstance(current, (str, int)) and not isinstance(current, bool), (field_path, current)
                new = str(value)
                if options:
                    parts = current.split(options["delimiter"])
                    index = options.get("index", 0)
                    assert 0 <= index < len(parts), (field_path, current)  # kustomize would add a part
                    parts[index] = new
                    new = options["delimiter"].join(parts)
                parent[key] = type(current)(new)


def generator(directory: Path, key: str, name: str) -> dict | None:
    return next((g for g in kustomization(directory).get(key, []) if g["name"] == name), None)


def literals(gen: dict | None) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in (gen or {}).get("literals", []))


def config(variant: str) -> dict[str, str]:
    """The ConfigMap rapport-config of a variant: the base's literals with the overlay's merged over them."""
    values = literals(generator(BASE, "configMapGenerator", CONFIG_MAP))
    if variant != "base":
        overlay = generator(K8S / "overlays" / variant, "configMapGenerator", CONFIG_MAP)
        if overlay is not None:
            assert overlay.get("behavior") == "merge", f"{variant} replaces the base's settings instead of merging"
            values.update(literals(overlay))
    return values


def secret(variant: str) -> dict[str, str]:
    """The Secret rapport-secrets: generated by the dev overlay; elsewhere created by the deployer from
    deploy/env/k8s-secrets.env.example."""
    if variant != "base":
        generated = generator(K8S / "overlays" / variant, "secretGenerator", SECRET)
        if generated is not None:
            return literals(generated)
    return read_env_file(ENV_DIR / "k8s-secrets.env.example")


def deep_merge(target: dict, patch: dict) -> None:
    for key, value in patch.items():
        assert not isinstance(value, list), "this renderer merges scalars and maps only; use kubectl kustomize"
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = value


def patch_documents(directory: Path, entry: dict) -> list:
    """The YAML documents of one entry of a kustomization's `patches`: its file's (`path`) or its own (`patch`)."""
    assert set(entry) in ({"path"}, {"patch", "target"}), \
        f"{directory.relative_to(ROOT)}: a patch this renderer does not read: {entry}; use kubectl kustomize"
    text = (directory / entry["path"]).read_text() if "path" in entry else entry["patch"]
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def targets_of(docs: list[dict], target: dict) -> list[dict]:
    """The objects a patch's target selects: by kind, by name (a regular expression that must match all of it,
    as kustomize anchors it) and by labels (`key=value,...`)."""
    assert set(target) <= {"kind", "name", "labelSelector"}, f"a target this renderer does not read: {target}"
    selector = target.get("labelSelector")
    terms = [re.fullmatch(r"([\w./-]+)=([\w.-]*)", term) for term in selector.split(",")] if selector else []
    assert all(terms), f"a label selector this renderer does not read: {selector}"
    labels = {term[1]: term[2] for term in terms}
    return [d for d in docs if target.get("kind", d["kind"]) == d["kind"]
            and re.fullmatch(target.get("name", ".*"), d["metadata"]["name"])
            and labels.items() <= d["metadata"].get("labels", {}).items()]


def json_patch(doc: dict, operations: list[dict]) -> None:
    """A JSON patch (RFC 6902) in the subset the overlays use: `replace` of a field the object has (kustomize
    would add a missing one; here it means the patch and the base disagree)."""
    for operation in operations:
        assert operation.keys() == {"op", "path", "value"} and operation["op"] == "replace", \
            f"a JSON patch operation this renderer does not apply: {operation}; use kubectl kustomize"
        *parents, last = [s.replace("~1", "/").replace("~0", "~") for s in operation["path"].split("/")[1:]]
        node = doc
        for segment in parents:
            node = node[int(segment) if isinstance(node, list) else segment]
        key = int(last) if isinstance(node, list) else last
        assert key in (range(len(node)) if isinstance(node, list) else node), \
            f"{doc['kind']} {doc['metadata']['name']} has no {operation['path']} to replace"
        node[key] = copy.deepcopy(operation["value"])


def apply_patch(variant: str, docs: list[dict], directory: Path, entry: dict) -> None:
    """One entry of an overlay's `patches`: a strategic merge patch file for the object it names, or an inline
    JSON patch for every object its target selects."""
    documents = patch_documents(directory, entry)
    assert len(documents) == 1, f"{variant}: a patch of {len(documents)} documents, which kustomize 5.0 " \
                                f"(kubectl 1.27) refuses to read"
    (document,) = documents
    if "path" in entry:
        assert isinstance(document, dict), f"{variant}: {entry['path']} is not a strategic merge patch"
        targets = [d for d in docs if (d["kind"], d["metadata"]["name"]) ==
                   (document["kind"], document["metadata"]["name"])]
        assert len(targets) == 1, f"{variant}: patch for {document['kind']} {document['metadata']['name']} " \
                                  f"matches {len(targets)} objects"
        deep_merge(targets[0], {k: v for k, v in document.items() if k not in ("apiVersion", "metadata")})
    else:
        assert isinstance(document, list), f"{variant}: an inline patch this renderer does not read: {document}"
        targets = targets_of(docs, entry["target"])
        # kustomize applies a patch that selects nothing to nothing, silently: here it is a mistake.
        assert targets, f"{variant}: the patch of target {entry['target']} selects no object"
        for target in targets:
            json_patch(target, document)


@cache
def render(variant: str) -> list[dict]:
    """The objects of a variant: the base's, with an overlay's resources and patches. Cached: callers only
    read it."""
    docs = copy.deepcopy(resources_of(BASE))
    if variant == "base":
        return docs
    directory = K8S / "overlays" / variant
    docs += [d for entry in kustomization(directory)["resources"] if not (directory / entry).is_dir()
             for d in load_docs(directory / entry)]
    for entry in kustomization(directory).get("patches", []):
        apply_patch(variant, docs, directory, entry)
    return docs


def objects(variant: str, kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in render(variant) if d["kind"] == kind}


def pod(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def only_container(deployment: dict) -> dict:
    (container,) = pod(deployment)["containers"]
    return container


def container_env(container: dict) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env", [])}


def port_number(container: dict, port: int | str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return number


def app_env(variant: str, container: dict) -> dict[str, str]:
    """What an app container sees: ConfigMap, then Secret (envFrom), then its own `env` (which wins)."""
    return {**config(variant), **filled_in(secret(variant)), **container_env(container)}


def worker_port(variant: str, name: str) -> int:
    container = only_container(objects(variant, "Deployment")[name])
    return Settings.load(name.removesuffix("-worker"), environ=app_env(variant, container)).worker_http_port


def pod_templates(variant: str) -> dict[str, dict]:
    """Every pod template: Deployments' and the Job's."""
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in render(variant)
            if d["kind"] in ("Deployment", "Job")}


# --- files and kustomizations ------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in K8S.rglob("*.yaml")),)
def test_every_manifest_parses_and_names_its_kind(path):
    docs = load_docs(ROOT / path)
    assert docs, f"{path} is empty"
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: a document without apiVersion/kind"


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_kustomizations_reference_files_that_exist(directory):
    for path in referenced_paths(directory):
        assert path.exists(), f"{directory.relative_to(ROOT)} references {path}, which does not exist"
        if path.is_dir():
            assert (path / "kustomization.yaml").is_file(), f"{path} is a directory without kustomization.yaml"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_build_on_the_base_in_their_own_namespace(overlay):
    k = kustomization(K8S / "overlays" / overlay)
    assert "../../base" in k["resources"]
    (namespace,) = [d for d in render(overlay) if d["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == k["namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_patch_is_one_document_as_kubectl_1_27_requires(overlay):
    """kustomize 5.0, in kubectl 1.27 (the oldest docs/deployment.md supports), refuses a patch of several
    documents, which later versions apply one by one: one patch per object, or one whose target selects several."""
    directory = K8S / "overlays" / overlay
    for entry in kustomization(directory).get("patches", []):
        documents = patch_documents(directory, entry)
        assert len(documents) == 1, f"{overlay}: the patch {entry.get('path') or entry['target']} holds " \
                                    f"{len(documents)} documents"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_set_the_app_image_and_pin_it(overlay):
    (image,) = [i for i in kustomization(K8S / "overlays" / overlay)["images"] if i["name"] == "rapport"]
    assert image.get("newTag") and image["newTag"] != "latest"


def test_the_base_declares_no_namespace_and_no_secret_values():
    k = kustomization(BASE)
    assert "namespace" not in k and "secretGenerator" not in k
    assert not [d for d in resources_of(BASE) if d["kind"] == "Secret"], "secrets do not belong in the base"


# --- processes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_one_deployment_per_process_and_no_toy_kafka_or_mongodb(variant):
    deployments = objects(variant, "Deployment")
    assert set(deployments) == {*APP_DEPLOYMENTS, PROXY}
    for name, template in pod_templates(variant).items():
        for container in template["containers"]:
            assert not re.search(r"kafka|mongo|ferret", container["image"]), \
                f"{name} runs {container['image']}: point at an existing cluster instead"
    assert not objects(variant, "StatefulSet")


@pytest.mark.parametrize("name", APP_DEPLOYMENTS)
def test_each_deployment_runs_existing_code_from_the_project_image(name):
    container = only_container(objects("base", "Deployment")[name])
    assert container["image"] == "rapport", "the overlays' `images` replace this name with the real image"
    args = argv(container["command"])
    service, kind = name.rsplit("-", 1)
    if kind == "api":
        assert gunicorn_app(args)[0] == f"services.{service}.entrypoints.app"
    else:
        assert python_module(args) == f"services.{service}.entrypoints.worker"
    assert_runs_existing_code(args)


def test_the_topics_job_runs_ensure_topics_once():
    jobs = objects("base", "Job")
    (job,) = jobs.values()
    container = only_container(job)
    assert container["image"] == "rapport"
    assert_runs_ensure_topics(argv(container["command"]))
    assert pod(job)["restartPolicy"] in ("OnFailure", "Never")
    assert job["spec"].get("ttlSecondsAfterFinished") is not None, "a finished Job would block the next apply"


# --- ports, probes and metrics -----------------------------------------------------------------------

@pytest.mark.parametrize("service", SERVICES)
def test_api_listens_on_its_port_and_its_service_reaches_it(service):
    deployment = objects("base", "Deployment")[f"{service}-api"]
    container = only_container(deployment)
    port = API_PORTS[service]
    assert option(argv(container["command"]), "-b") == f"0.0.0.0:{port}"
    assert port_number(container, "http") == port
    svc = objects("base", "Service")[f"{service}-api"]
    assert svc["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port["port"] == port and port_number(container, svc_port["targetPort"]) == port


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_api_probes_ask_readyz_and_healthz_on_its_port_and_wait_for_a_slow_readyz(variant, service):
    container = only_container(objects(variant, "Deployment")[f"{service}-api"])
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/readyz" and liveness["httpGet"]["path"] == "/healthz"
    for probe in (readiness, liveness, container.get("startupProbe") or liveness):
        assert port_number(container, probe["httpGet"]["port"]) == API_PORTS[service]
    # /readyz pings the database and the broker with timeouts of a few seconds: ~5 s when one is away.
    assert readiness["timeoutSeconds"] >= 5


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_worker_serves_probes_on_the_pod_address_and_its_probes_ask_there(variant, service):
    name = f"{service}-worker"
    container = only_container(objects(variant, "Deployment")[name])
    settings = Settings.load(service, environ=app_env(variant, container))
    assert settings.worker_http_port > 0, "the worker's probe server is off"
    assert settings.worker_http_host == "0.0.0.0", "the kubelet cannot reach a server on the pod's loopback"
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/readyz" and liveness["httpGet"]["path"] == "/healthz"
    for probe in (readiness, liveness):
        assert port_number(container, probe["httpGet"]["port"]) == settings.worker_http_port
    assert readiness["timeoutSeconds"] >= 5


@pytest.mark.parametrize("name", APP_DEPLOYMENTS)
def test_prometheus_scrapes_metrics_where_the_process_serves_them(name):
    deployment = objects("base", "Deployment")[name]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    service = name.rsplit("-", 1)[0]
    expected = API_PORTS[service] if name.endswith("-api") else worker_port("base", name)
    assert int(annotations["prometheus.io/port"]) == expected


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_selector_selects_the_pods_of_one_deployment(variant):
    """The service template's replacements write the names into labels and selectors: one they missed would
    leave a Deployment the API server rejects, or a Service or disruption budget that selects nothing."""
    deployments = objects(variant, "Deployment")

    def pods_of(selector: dict) -> list[str]:
        return [name for name, d in deployments.items()
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]

    for name, deployment in deployments.items():
        assert pods_of(deployment["spec"]["selector"]["matchLabels"]) == [name], f"Deployment {name}"
    for name, service in objects(variant, "Service").items():
        assert len(pods_of(service["spec"]["selector"])) == 1, f"Service {name}"
    for name, budget in objects(variant, "PodDisruptionBudget").items():
        assert len(pods_of(budget["spec"]["selector"]["matchLabels"])) == 1, f"PodDisruptionBudget {name}"


# --- scaling -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_each_api_has_an_autoscaler_that_owns_its_replica_count(variant):
    autoscalers = objects(variant, "HorizontalPodAutoscaler")
    deployments = objects(variant, "Deployment")
    for service in SERVICES:
        hpa = autoscalers[f"{service}-api"]
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", f"{service}-api")
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert "replicas" not in deployments[f"{service}-api"]["spec"], "an applied count would fight the HPA"
        # The HPA's CPU utilisation is relative to the request.
        assert only_container(deployments[f"{service}-api"])["resources"]["requests"]["cpu"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_worker_replicas_do_not_exceed_the_topic_partitions(variant, service):
    partitions = Settings.load(service, environ={**config(variant), **filled_in(secret(variant))}).topic_partitions
    replicas = objects(variant, "Deployment")[f"{service}-worker"]["spec"].get("replicas", 1)
    assert 1 <= replicas <= partitions, f"{variant}: {replicas} {service} workers for {partitions} partitions"


# --- security ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_runs_as_non_root_with_a_read_only_root_filesystem_and_resources(variant):
    app_uid = int(re.search(r"^USER\s+(\d+)", DOCKERFILE.read_text(), re.M).group(1))
    for name, template in pod_templates(variant).items():
        security = template["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        assert template.get("automountServiceAccountToken") is False, name
        for container in template["containers"]:
            if container["image"] == "rapport":
                assert security["runAsUser"] == app_uid, f"{name} runs as another uid than the image's user"
            c_security = container["securityContext"]
            assert c_security["readOnlyRootFilesystem"] is True, name
            assert c_security["allowPrivilegeEscalation"] is False, name
            assert c_security["capabilities"]["drop"] == ["ALL"], name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{name}: {bound}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_app_pods_write_only_to_an_empty_dir_at_tmp(variant):
    """gunicorn's heartbeat files and prometheus_client's multiprocess directory need a writable /tmp."""
    for name, template in pod_templates(variant).items():
        volumes = {v["name"]: v for v in template.get("volumes", [])}
        for container in template["containers"]:
            if container["image"] != "rapport":
                continue
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp is not an emptyDir"
            metrics_dir = app_env(variant, container).get("PROMETHEUS_MULTIPROC_DIR")
            if metrics_dir is not None:  # else deploy/gunicorn.conf.py makes one under /tmp
                assert any(metrics_dir.startswith(path) and "emptyDir" in volumes[volume]
                           for path, volume in mounts.items())


# --- configuration -----------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_app_containers_read_the_config_map_and_the_secret(variant):
    for name, template in pod_templates(variant).items():
        for container in template["containers"]:
            if container["image"] != "rapport":
                continue
            sources = {(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()}
            assert sources == {("configMapRef", CONFIG_MAP), ("secretRef", SECRET)}, name


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variable_is_read_by_the_code_and_parses(variant):
    assert_env_is_read_by_the_code(f"{variant} ConfigMap", config(variant))
    assert_env_is_read_by_the_code(f"{variant} Secret", secret(variant))
    for name, template in pod_templates(variant).items():
        for container in template["containers"]:
            if container["image"] == "rapport":
                assert_env_is_read_by_the_code(name, container_env(container), FOREIGN_APP_VARS)
                assert_env_loads(name, app_env(variant, container))


def test_secrets_hold_what_is_secret_and_the_config_map_does_not():
    secret_keys = {"RAPPORT_JWT_SECRET", "RAPPORT_MONGO_URI", "RAPPORT_NOTIFY_SMTP_PASSWORD"}
    for variant in VARIANTS:
        assert secret_keys <= set(secret(variant)), variant
        assert not secret_keys & set(config(variant)), f"{variant}: a secret in the ConfigMap"


@pytest.mark.parametrize("variant", ("base", "prod"))
def test_production_refuses_the_placeholder_secret_and_replicates_topics(variant):
    env = {**config(variant), **secret(variant)}
    assert env["RAPPORT_ENVIRONMENT"] == "production"
    with pytest.raises(ValueError, match="RAPPORT_JWT_SECRET"):
        Settings.load("intake", environ=env)
    # Three replicas of every topic on a Kafka cluster (with min.insync.replicas 2, docs/scaling.md).
    assert int(env["RAPPORT_TOPIC_REPLICATION"]) == 3


@pytest.mark.parametrize("variant", VARIANTS)
def test_public_urls_are_one_origin_with_the_proxy_prefixes(variant):
    values = config(variant)
    origin = values["RAPPORT_INTAKE_URL"]
    assert origin.startswith("https://")
    for service, prefix in PREFIXES.items():
        assert values[f"RAPPORT_{service.upper()}_URL"] == origin + prefix


# --- the proxy ---------------------------------------------------------------------------------------

def test_the_proxy_config_map_holds_the_shared_nginx_conf_and_the_kubernetes_upstreams():
    gen = generator(PROXY_DIR, "configMapGenerator", PROXY)
    assert sorted(gen["files"]) == ["nginx.conf", "upstreams.conf=upstreams.k8s.conf"]
    assert "../../proxy" in kustomization(BASE)["resources"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_proxy_mounts_its_config_and_certificate_where_nginx_reads_them(variant):
    deployment = objects(variant, "Deployment")[PROXY]
    container = only_container(deployment)
    volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for path, key in (("/etc/nginx/nginx.conf", "nginx.conf"), (UPSTREAMS_MOUNT, "upstreams.conf")):
        assert mounts[path]["subPath"] == key
        assert volumes[mounts[path]["name"]]["configMap"]["name"] == PROXY
    (certificate,) = tls_server(nginx_http()).values("ssl_certificate")
    tls_mount = mounts[posixpath.dirname(certificate[0])]
    assert volumes[tls_mount["name"]]["secret"]["secretName"] == "rapport-tls"
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]], "nginx writes its temporary files to /tmp"


def test_the_proxy_runs_the_same_nginx_as_on_a_docker_host():
    container = only_container(objects("base", "Deployment")[PROXY])
    compose_proxy = compose_services()["proxy"]
    assert container["image"] == compose_proxy["image"]
    assert container["command"] == compose_proxy["entrypoint"]


def test_the_proxy_routes_each_prefix_to_the_service_of_its_api():
    services = objects("base", "Service")
    routes = {loc.args[0]: loc.values("proxy_pass")[0][0].removeprefix("http://")
              for loc in tls_server(nginx_http()).all("location")
              if len(loc.args) == 1 and loc.values("proxy_pass")}
    upstreams = upstream_servers(PROXY_DIR / "upstreams.k8s.conf")
    for service, prefix in PREFIXES.items():
        (address,) = upstreams[routes[prefix + "/"]]
        host, port = address.split(":")
        assert host == f"{service}-api"
        assert [p["port"] for p in services[host]["spec"]["ports"]] == [int(port)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_proxy_service_and_probes_reach_what_nginx_listens_on(variant):
    deployment = objects(variant, "Deployment")[PROXY]
    container = only_container(deployment)
    listening = {int(args[0]) for server in nginx_http().all("server") for args in server.values("listen")}
    service = objects(variant, "Service")[PROXY]
    assert {port_number(container, p["targetPort"]) for p in service["spec"]["ports"]} == listening
    health = [loc.args[1] for s in nginx_http().all("server") for loc in s.all("location") if loc.args[0] == "="
              and loc.values("return") and loc.values("return")[0][0] == "200"]
    for probe in (container["readinessProbe"], container["livenessProbe"]):
        assert probe["httpGet"]["path"] in health
        assert port_number(container, probe["httpGet"]["port"]) in listening


def test_network_policies_open_the_ports_the_processes_serve():
    policies = objects("base", "NetworkPolicy")
    api_ports = {p["port"] for rule in policies["rapport-apis"]["spec"]["ingress"] for p in rule["ports"]}
    assert api_ports == set(API_PORTS.values())
    worker_ports = {p["port"] for rule in policies["rapport-workers"]["spec"]["ingress"] for p in rule["ports"]}
    assert worker_ports == {worker_port("base", f"{s}-worker") for s in SERVICES}
    (proxy_from,) = [peer for rule in policies["rapport-apis"]["spec"]["ingress"] for peer in rule["from"]
                     if "podSelector" in peer]
    labels = objects("base", "Deployment")[PROXY]["spec"]["template"]["metadata"]["labels"]
    assert proxy_from["podSelector"]["matchLabels"].items() <= labels.items()


def test_nginx_conf_parses_with_every_include_accounted_for():
    includes = [args[0] for args in nginx_http().values("include")]
    assert UPSTREAMS_MOUNT in includes
    assert parse_nginx(NGINX_CONF.read_text()).all("http")


# --- the real renderer, when it is installed -----------------------------------------------------------

def map_strings(node, function):
    if isinstance(node, dict):
        return {key: map_strings(value, function) for key, value in node.items()}
    if isinstance(node, list):
        return [map_strings(value, function) for value in node]
    return function(node) if isinstance(node, str) else node


KUSTOMIZE = os.environ.get("KUSTOMIZE") or shutil.which("kustomize")
BUILDERS = (
    pytest.param(["kubectl", "kustomize"], id="kubectl",
                 marks=pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")),
    # KUSTOMIZE=path/to/kustomize picks a binary, e.g. v5.0.1, the version of kubectl 1.27 (the oldest supported).
    pytest.param([KUSTOMIZE, "build"], id="kustomize",
                 marks=pytest.mark.skipif(KUSTOMIZE is None, reason="no kustomize on PATH and no $KUSTOMIZE")),
)


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_builds_what_these_tests_check(builder, overlay):
    """Object for object, field for field, what the renderer above makes of the base (its component and
    replacements included) and the overlay's patches is what kustomize makes of them."""
    run = subprocess.run([*builder, str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"{' '.join(builder)} fails: {run.stderr}"
    built = run.stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    namespace = kustomization(K8S / "overlays" / overlay)["namespace"]
    assert {d["metadata"].get("namespace", namespace) for d in docs} == {namespace}
    images = {c["image"] for d in docs if d["kind"] in ("Deployment", "Job")
              for c in d["spec"]["template"]["spec"]["containers"]}
    (image,) = [i for i in kustomization(K8S / "overlays" / overlay)["images"] if i["name"] == "rapport"]
    full_image = f"{image['newName']}:{image['newTag']}"
    assert full_image in images and "rapport" not in images

    # What kustomize adds and the renderer leaves out: the namespace, the base's part-of label, the image's
    # registry and tag, and the hash that generated objects' names (and references to them) end in.
    generated = {("ConfigMap", CONFIG_MAP), ("ConfigMap", PROXY), ("Secret", SECRET)}
    unhashed = re.compile(rf"^({'|'.join(name for _, name in generated)})-[a-z0-9]{{10}}$")

    def as_rendered_here(doc: dict) -> dict:
        doc["metadata"].pop("namespace", None)
        for metadata in (doc["metadata"], (doc.get("spec") or {}).get("template", {}).get("metadata", {})):
            metadata.get("labels", {}).pop("app.kubernetes.io/part-of", None)
            if metadata.get("labels") == {}:
                del metadata["labels"]
        return map_strings(doc, lambda text: "rapport" if text == full_image else unhashed.sub(r"\1", text))

    kustomized = {(d["kind"], d["metadata"]["name"]): d for d in map(as_rendered_here, docs)}
    kustomized = {key: doc for key, doc in kustomized.items() if key not in generated}
    assert kustomized == {(d["kind"], d["metadata"]["name"]): d for d in render(overlay)}
