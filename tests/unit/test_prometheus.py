"""The Prometheus textfile: what it holds, read back by prometheus_client's own parser, and how it is written."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from certaudit.errors import PathError
from certaudit.host.facts import FileFact, HostFacts
from certaudit.jobs import prometheus
from certaudit.policy import Policy, policy_for
from certaudit.record import Record
from tests.fleet import pki
from tests.unit.jobs_project import make_project, tls_endpoint, write_tls_dir

pytest_plugins = ["pytester"]

AUDITED_AT = dt.datetime(2026, 11, 27, 2, 0, 0, tzinfo=dt.UTC)
FINISHED = dt.datetime(2026, 11, 27, 2, 0, 7, 250000, tzinfo=dt.UTC)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text-format document, parsed by prometheus_client: (name, sorted labels) -> value."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in found, f"duplicate series {key}"
            found[key] = sample.value
    return found


def host_facts(host: str, policy: Policy, cert_pem: bytes | None) -> HostFacts:
    files = {}
    if cert_pem is not None:
        files[policy.tls_cert] = FileFact(path=policy.tls_cert, host=host, present=True, kind="file", content=cert_pem)
    return HostFacts(
        host=host,
        taken_at=AUDITED_AT.timestamp(),
        audited_at=AUDITED_AT.timestamp(),
        systemd=True,
        files=files,
        listings={},
        public_keys={},
        units={},
        units_error="",
        processes=None,
        service_uid=None,
        service_gid=None,
        endpoint=None,
    )


def test_the_document_holds_every_series_with_its_value() -> None:
    web1 = pki.issue("stemedb.example.com", days_left=60, now=AUDITED_AT)
    api = pki.issue("api.example.org", days_left=-2, now=AUDITED_AT)
    policies = {"web-1": policy_for("web-1", {}), "api-1": policy_for("api-1", {"certaudit_domain": "api.example.org"})}
    records = [
        Record(control="KEY-01", title="t", host="web-1", outcome="pass"),
        Record(control="CRT-01", title="t", host="web-1", outcome="fail"),
        Record(control="LIVE-01", title="t", host="web-1", outcome="error"),
        Record(control="KEY-02", title="t", host="web-1", outcome="waived"),
        Record(control="REN-01", title="t", host="api-1", outcome="not applicable"),
        Record(control="REN-01", title="t", host="api-1", outcome="not applicable"),  # a repeat is written once
    ]
    facts = {
        "web-1": host_facts("web-1", policies["web-1"], web1.fullchain_pem),
        "api-1": host_facts("api-1", policies["api-1"], api.cert_pem),
        "db-1": host_facts("db-1", policy_for("db-1", {}), None),  # no certificate: no expiry sample
    }
    # What the run keeps of each reached host once its controls are done (Audit._keep).
    expiries = {h: prometheus.expiry_seconds(f, policies.get(h, policy_for(h, {}))) for h, f in facts.items()}
    text = prometheus.render(records, expiries, policies, FINISHED)
    assert samples(text) == {
        ("certaudit_control_status", (("control", "KEY-01"), ("host", "web-1"))): 1,
        ("certaudit_control_status", (("control", "CRT-01"), ("host", "web-1"))): 0,
        ("certaudit_control_status", (("control", "LIVE-01"), ("host", "web-1"))): -1,
        ("certaudit_control_status", (("control", "KEY-02"), ("host", "web-1"))): 2,
        ("certaudit_control_status", (("control", "REN-01"), ("host", "api-1"))): 3,
        ("certaudit_cert_expiry_seconds", (("domain", "stemedb.example.com"), ("host", "web-1"))): 60 * 86400,
        ("certaudit_cert_expiry_seconds", (("domain", "api.example.org"), ("host", "api-1"))): -2 * 86400,
        ("certaudit_last_run_timestamp_seconds", ()): FINISHED.timestamp(),
    }
    assert text.endswith("\n")
    assert "# HELP certaudit_control_status Outcome of a certaudit control on a host in the last run: 1 pass, 0 fail" in text


def test_label_values_are_escaped() -> None:
    host = 'we"ird\\host\nname'
    text = prometheus.render([Record(control="KEY-01", title="t", host=host, outcome="pass")], {}, {}, FINISHED)
    assert samples(text)[("certaudit_control_status", (("control", "KEY-01"), ("host", host)))] == 1


def test_written_whole_readable_by_the_collector_and_replacing_the_old(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "certaudit.prom"
    target.write_text("old\n")
    renames: list[tuple[Path, str]] = []
    real_replace = os.replace

    def watching_replace(src: Any, dst: Any) -> None:
        # At the rename the temporary is complete, hidden, not *.prom and in the same directory.
        renames.append((Path(src), Path(src).read_text()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watching_replace)
    text = prometheus.render([], {}, {}, FINISHED)
    prometheus.write_textfile(target, text)
    ((temporary, content_at_rename),) = renames
    assert temporary.parent == tmp_path and temporary.name.startswith(".certaudit.prom.") and temporary.suffix == ".tmp"
    assert content_at_rename == text
    assert target.read_text() == text
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certaudit.prom"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "certaudit.prom"
    target.write_text("old\n")

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(PathError, match=r"certaudit.prom: cannot be written: No space left on device"):
        prometheus.write_textfile(target, "x 1\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certaudit.prom"]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("certaudit.txt", "reads only files named \\*.prom"),
        (".certaudit.prom", "reads only files named \\*.prom"),
        ("missing/certaudit.prom", "not a directory: create it first"),
    ],
)
def test_an_unusable_destination_is_refused_up_front(tmp_path: Path, name: str, why: str) -> None:
    with pytest.raises(PathError, match=why):
        prometheus.check_destination(tmp_path / name)


def test_a_real_run_writes_the_textfile(pytester: pytest.Pytester) -> None:
    tls = pytester.path / "tls"
    write_tls_dir(tls, 45)
    (pytester.path / "metrics").mkdir()
    with tls_endpoint(tls) as port:
        make_project(pytester.path, tls, port)
        result = pytester.runpytest_subprocess(
            "checks", "--inventory", "inv.yml", "--evidence", "ev.json", "--prometheus-textfile", "metrics/certaudit.prom",
            "-p", "no:cacheprovider", timeout=120,
        )  # fmt: skip
    evidence = json.loads((pytester.path / "ev.json").read_text())
    found = samples((pytester.path / "metrics" / "certaudit.prom").read_text())
    code = {"pass": 1, "fail": 0, "error": -1, "waived": 2, "not applicable": 3}
    statuses = {dict(labels)["control"]: value for (name, labels), value in found.items() if name == "certaudit_control_status"}
    assert statuses == {r["control"]: code[r["outcome"]] for r in evidence["results"]}, result.outlines[-20:]
    (crt,) = [r for r in evidence["results"] if r["control"] == "CRT-01"]
    expiry = found[("certaudit_cert_expiry_seconds", (("domain", "stemedb.example.com"), ("host", "localhost")))]
    assert expiry == pytest.approx(crt["observed"]["days_left"] * 86400, abs=0.01 * 86400)  # days_left is rounded to 0.01
    last_run = found[("certaudit_last_run_timestamp_seconds", ())]
    assert dt.datetime.fromisoformat(evidence["run"]["started"]).timestamp() <= last_run


def test_an_unusable_destination_stops_the_run_before_any_host(pytester: pytest.Pytester) -> None:
    make_project(pytester.path, pytester.path / "tls", 1)
    result = pytester.runpytest_subprocess(
        "checks", "--inventory", "inv.yml", "--prometheus-textfile", "nowhere/certaudit.prom", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = "\n".join(result.outlines + result.errlines)
    assert "certaudit: --prometheus-textfile: nowhere: not a directory: create it first" in output
    assert "Traceback" not in output


def test_a_run_that_did_not_complete_leaves_the_old_file(pytester: pytest.Pytester) -> None:
    """Partial results must not pass for the fleet's state: the old file stays and ages."""
    make_project(pytester.path, pytester.path / "tls", 1)
    (pytester.path / "metrics").mkdir()
    old = pytester.path / "metrics" / "certaudit.prom"
    old.write_text("certaudit_last_run_timestamp_seconds 1\n")
    result = pytester.runpytest_subprocess(
        "checks", "--inventory", "missing.yml", "--prometheus-textfile", str(old), "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert old.read_text() == "certaudit_last_run_timestamp_seconds 1\n"
    output = "\n".join(result.outlines + result.errlines)
    assert "certaudit: --prometheus-textfile: not written, the run did not complete (exit 4)" in output
