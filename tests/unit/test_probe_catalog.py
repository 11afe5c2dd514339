"""The facts the catalog's controls need: gathered on the host (remote_probe), fetched from the
endpoint (tls), typed (facts), and the policy variables that steer them."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from certaudit.gather.tls import fetch_leaf
from certaudit.host.facts import facts_from_probe
from certaudit.inventory import target_for
from certaudit.policy import PolicyError, policy_for

STAND_IN = Path(__file__).resolve().parents[1] / "fleet" / "files" / "stemedb_api.py"
# The probe is untyped (it runs on the host's python3.6+): imported as a plain module, not type-checked.
remote_probe: Any = importlib.import_module("certaudit.gather.remote_probe")


# --- the host side ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "patterns"),
    [
        ('rule_files:\n  - "rules/*.yml"\n  - /etc/alerts.yml # ours\nscrape_configs: []\n', ["rules/*.yml", "/etc/alerts.yml"]),
        ("global: {}\nrule_files: ['a.yml', \"b.yml\"]\n", ["a.yml", "b.yml"]),
        ("rule_files:\n\n  # none yet\nalerting: {}\n", []),
        ("rule_files:\n- x.yml\n- y.yml\n", ["x.yml", "y.yml"]),
        ("global:\n  rule_files: [nested.yml]\n", []),
    ],
)
def test_rule_file_patterns(config: str, patterns: list[str]) -> None:
    assert remote_probe.rule_file_patterns(config) == patterns


def test_other_lineages() -> None:
    domain = "stemedb.example.com"
    assert remote_probe.other_lineage("stemedb.example.com-0001", domain)
    assert not remote_probe.other_lineage("stemedb.example.com", domain)
    assert not remote_probe.other_lineage("stemedb.example.com-1", domain)
    assert not remote_probe.other_lineage("stemedb.example.com-0001x", domain)
    assert not remote_probe.other_lineage("api.example.com-0001", domain)


def test_certbot_logs_keep_the_telling_lines(tmp_path: Path) -> None:
    older = tmp_path / "letsencrypt.log.1"
    older.write_text("2026-11-27 00:00:00,000:DEBUG:certbot._internal.main:certbot version: 2.1.0\n")
    os.utime(older, (1000, 1000))
    current = tmp_path / "letsencrypt.log"
    current.write_text(
        "2026-11-28 00:52:20,037:DEBUG:certbot._internal.main:certbot version: 2.1.0\n"
        "2026-11-28 00:52:20,038:DEBUG:acme.client:Sending GET request\n"
        "HTTP 200\n"
        "2026-11-28 00:52:20,041:DEBUG:certbot._internal.display.obj:Notifying user: \n"
        "Successfully received certificate.\n"
    )
    (tmp_path / "other.log").write_text("certbot version: not certbot's log\n")
    found = remote_probe.certbot_logs(str(tmp_path))
    assert [log["path"] for log in found["logs"]] == [str(current), str(older)]
    lines = found["logs"][0]["lines"]
    assert [line["text"] for line in lines] == [
        "2026-11-28 00:52:20,037:DEBUG:certbot._internal.main:certbot version: 2.1.0",
        "Successfully received certificate.",
    ]
    # A continuation line carries the time of the line it continues; local time, converted on the host.
    expected = time.mktime(time.strptime("2026-11-28 00:52:20", "%Y-%m-%d %H:%M:%S")) + 0.041
    assert lines[1]["time"] == pytest.approx(expected)
    assert remote_probe.certbot_logs(str(tmp_path / "missing"))["error"]["errno"] == 2


def fake_tool(directory: Path, name: str, script: str) -> None:
    tool = directory / name
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)


def test_service_events_from_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [
        {"__REALTIME_TIMESTAMP": "1000000000", "JOB_TYPE": "start", "JOB_RESULT": "done", "MESSAGE": "Started (before)"},
        {"__REALTIME_TIMESTAMP": "2000500000", "JOB_TYPE": "reload", "MESSAGE": "Reloading..."},
        {"__REALTIME_TIMESTAMP": "2000600000", "_SYSTEMD_UNIT": "stemedb-api.service", "MESSAGE": "certificate reloaded: x"},
        {"__REALTIME_TIMESTAMP": "2000700000", "JOB_TYPE": "reload", "JOB_RESULT": "done", "MESSAGE": "Reloaded."},
        {"__REALTIME_TIMESTAMP": "2000800000", "_SYSTEMD_UNIT": "stemedb-api.service", "MESSAGE": [99, 101, 114, 255]},
    ]
    (tmp_path / "journal.json").write_text("".join(json.dumps(e) + "\n" for e in entries) + "not json\n")
    fake_tool(tmp_path, "journalctl", f'echo "$@" > {tmp_path}/argv; cat {tmp_path}/journal.json\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    found = remote_probe.service_events("stemedb-api.service", 2000.25)
    assert [(e["time"], e["kind"]) for e in found["events"]] == [(2000.6, "service-reloaded"), (2000.7, "reload")]
    assert found["entries_read"] == 6 and not found["truncated"] and "error" not in found
    assert (tmp_path / "argv").read_text().split() == [
        "--no-pager", "-q", "-o", "json", "-u", "stemedb-api.service", "--since", "@1999",
    ]  # fmt: skip
    fake_tool(tmp_path, "journalctl", "echo 'Failed to open journal' >&2; exit 1\n")
    assert remote_probe.service_events("stemedb-api.service", 2000.25)["error"]["reason"].startswith("journalctl exited 1")


def test_prometheus_facts_and_promtool_test_on_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "certificates.yml").write_text("groups: []\n")
    (tmp_path / "prometheus.yml").write_text(
        'global: {}\nrule_files:\n  - "rules/*.yml"\n\n  # later\n  - missing/*.yml\n'
        "remote_write:\n  - url: https://m.example/api\n    bearer_token: s3cr3t\n"
    )
    fake_tool(
        tmp_path,
        "promtool",
        f'[ "$1" = --version ] && echo "promtool, version 9.9" && exit 0\ncat > {tmp_path}/test.json\necho SUCCESS\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    files: dict[str, dict[str, object]] = {}

    def add(path: str, read_limit: int = 0) -> None:
        files[path] = remote_probe.describe(path, read_limit)

    params = {
        "prometheus_config": str(tmp_path / "prometheus.yml"),
        "domain": "stemedb.example.com",
        "warn_days": 30,
        "crit_days": 7,
    }
    found = remote_probe.prometheus_facts(params, files, add)
    assert found["rule_patterns"] == ["rules/*.yml", "missing/*.yml"]
    # Only the rule_files lines leave the host: not the credentials elsewhere in the config.
    assert found["rule_files_block"] == 'rule_files:\n  - "rules/*.yml"\n\n  # later\n  - missing/*.yml\n'
    assert "content_b64" not in files[str(tmp_path / "prometheus.yml")] and "s3cr3t" not in json.dumps(found)
    assert found["rule_files"] == [str(tmp_path / "rules" / "certificates.yml")]
    assert set(files) == {str(tmp_path / "prometheus.yml"), str(tmp_path / "rules" / "certificates.yml")}
    promtool = found["promtool"]
    assert (promtool["rc"], promtool["version"], promtool["output"]) == (0, "promtool, version 9.9", "SUCCESS\n")
    test = json.loads((tmp_path / "test.json").read_text())
    assert test["rule_files"] == found["rule_files"]
    # The runbook's four points (held a day, evaluated every 10 minutes), then the lifetime points.
    assert [t["input_series"][0]["values"] for t in test["tests"]][:5] == [
        "2678400x144",
        "2505600x144",
        "691200x144",
        "518400x144",
        "1846800x144",  # a 64-day certificate an hour before certbot 4.0 renews it (21.375 days)
    ]
    assert len(test["tests"]) == 4 + 11 and test["evaluation_interval"] == "10m"
    assert test["tests"][0]["input_series"][0]["series"] == 'stemedb_tls_cert_expiry_seconds{domain="stemedb.example.com"}'
    assert [e["promql_expr_test"][0]["exp_samples"] for e in test["tests"]][3] == [
        {"labels": '{alertname="CertificateExpiringWarning"}', "value": 1},
        {"labels": '{alertname="CertificateExpiringSoon"}', "value": 1},
    ]
    # Typed, as MON-02 reads it.
    raw = {"time": 1.0, "systemd": False, "files": {}, "prometheus": found}
    typed = facts_from_probe("h", raw, 1.0, None).prometheus()
    assert typed is not None and typed.promtool is not None and typed.promtool.points[1] == (29, ("CertificateExpiringWarning",))
    assert typed.promtool.lifetime_points[0] == (64, 21.375, ())


# --- the auditing machine's side ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def stand_in(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[int]:
    """The fleet's stemedb-api stand-in on this machine, serving a leaf and its intermediate."""
    ca = trustme.CA()
    leaf = ca.create_child_ca().issue_cert("stemedb.example.com")
    (tmp_path / "cert.pem").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    (tmp_path / "key.pem").write_bytes(leaf.private_key_pem.bytes())
    port = _free_port()
    env = dict(os.environ, STEMEDB_TLS_DIR=str(tmp_path), STEMEDB_BIND="127.0.0.1", STEMEDB_PORT=str(port), **request.param)
    server = subprocess.Popen([sys.executable, str(STAND_IN)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert server.stdout is not None and b"serving" in server.stdout.readline()
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()


@pytest.mark.parametrize("stand_in", [{}], indirect=True)
def test_one_connection_reads_leaf_chain_and_metrics(stand_in: int) -> None:
    endpoint = fetch_leaf("127.0.0.1", stand_in, "stemedb.example.com", timeout=5)
    assert endpoint.leaf_der is not None and len(endpoint.chain_der) == 2 and endpoint.chain_der[0] == endpoint.leaf_der
    page = endpoint.metrics
    assert page is not None and page.status == 200 and page.url == f"https://stemedb.example.com:{stand_in}/metrics"
    assert page.body is not None and b'stemedb_tls_cert_expiry_seconds{domain="stemedb.example.com"}' in page.body
    assert abs(page.fetched_at - time.time()) < 60


@pytest.mark.parametrize("stand_in", [{"STEMEDB_METRICS": "none"}], indirect=True)
def test_stand_in_can_leave_the_metric_out(stand_in: int) -> None:
    page = fetch_leaf("127.0.0.1", stand_in, "stemedb.example.com", timeout=5).metrics
    assert page is not None and page.body is not None and b"stemedb_tls_cert_expiry_seconds{" not in page.body


def test_nothing_listening_is_no_metrics() -> None:
    endpoint = fetch_leaf("127.0.0.1", _free_port(), "stemedb.example.com", timeout=5)
    assert endpoint.metrics is None and endpoint.chain_der == () and "connection refused" in endpoint.error


def _trickling_endpoint(stop: threading.Event) -> tuple[int, threading.Thread]:
    """A TLS endpoint that answers GET /metrics with 400 bytes, one every 50 ms (20 s in all)."""
    leaf = trustme.CA().issue_cert("stemedb.example.com")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener, contextlib.suppress(OSError):
            raw, _ = listener.accept()
            with context.wrap_socket(raw, server_side=True) as tls:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += tls.recv(4096)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 400\r\n\r\n")
                for _ in range(400):
                    if stop.wait(0.05):
                        return
                    tls.sendall(b"#")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return int(listener.getsockname()[1]), thread


def test_an_endpoint_that_trickles_is_cut_off_at_the_timeout_of_the_whole_exchange() -> None:
    # Each byte comes well within the timeout: only a bound on the whole exchange ends it (at 1 s,
    # not 20), so that a probe worker is not held by one host long after its budget.
    stop = threading.Event()
    port, server = _trickling_endpoint(stop)
    try:
        endpoint = fetch_leaf("127.0.0.1", port, "stemedb.example.com", timeout=1)
    finally:
        stop.set()
        server.join(timeout=10)
    assert endpoint.leaf_der is not None and endpoint.error == ""  # the handshake itself was prompt
    page = endpoint.metrics
    assert page is not None and page.body is None and page.determinable is False
    assert page.error == "no complete answer to GET /metrics within 1 s"


# --- policy ---------------------------------------------------------------------------------------------
def test_catalog_policy_variables(tmp_path: Path) -> None:
    bundle = tmp_path / "roots.pem"
    bundle.write_text("")
    policy = policy_for(
        "h",
        {
            "certaudit_threshold_mode": "lifetime",
            "certaudit_warn_fraction": "0.5",
            "certaudit_crit_fraction": 0.1,
            "certaudit_ca_bundle": str(bundle),
            "certaudit_prometheus_config": "/srv/prom/prometheus.yml",
        },
        groups=("prometheus", "web"),
    )
    assert (policy.threshold_mode, policy.warn_fraction, policy.crit_fraction) == ("lifetime", 0.5, 0.1)
    assert (policy.ca_bundle, policy.prometheus_config, policy.groups) == (
        str(bundle),
        "/srv/prom/prometheus.yml",
        ("prometheus", "web"),
    )
    assert target_for("h", {"ansible_connection": "local"}, ("prometheus",)).policy.groups == ("prometheus",)


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        ({"certaudit_threshold_mode": "weeks"}, "expected auto, days or lifetime"),
        ({"certaudit_warn_fraction": 1.5}, "expected a share of the lifetime between 0 and 1"),
        ({"certaudit_crit_fraction": "nan"}, "expected a share of the lifetime between 0 and 1"),
        ({"certaudit_crit_fraction": True}, "expected a share of the lifetime between 0 and 1"),
        ({"certaudit_warn_fraction": 0.1, "certaudit_crit_fraction": 0.2}, "must be below certaudit_warn_fraction (0.1)"),
        ({"certaudit_ca_bundle": "/nonexistent/roots.pem"}, "no such file on the auditing machine"),
        ({"certaudit_ca_bundle": "roots.pem"}, "expected an absolute path"),
        ({"certaudit_groups": ["prometheus"]}, "unknown variable"),
    ],
)
def test_catalog_policy_refuses(variables: dict[str, object], says: str) -> None:
    with pytest.raises(PolicyError, match=says.replace("(", r"\(").replace(")", r"\)")):
        policy_for("h", variables)
    with pytest.raises(PolicyError) as caught:
        policy_for("h", {"certaudit_groups": ["x"]})
    assert "certaudit_groups" not in str(caught.value).split("known: ")[1]
