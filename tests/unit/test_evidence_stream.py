"""evidence.json written as it is produced (certaudit/evidence/run.py, certaudit/record.py): records
and snapshots spooled to anonymous temporary files, assembled by streaming at the end.

The streamed file must be the very bytes of the whole document dumped at once (what certaudit wrote
before), valid against the evidence schema, and whole or absent when the writing fails midway.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from certaudit.evidence.merge import SCHEMA_PATH
from certaudit.evidence.run import (
    EVIDENCE_SCHEMA_ID,
    EVIDENCE_SCHEMA_VERSION,
    SnapshotLog,
    evidence_parts,
    write_streamed,
)
from certaudit.host.facts import HostFacts
from certaudit.record import Record, RecordLog


def record(host: str, control: str, outcome: Any = "pass", **extra: Any) -> Record:
    return Record(control=control, title=f"{control} title", host=host, outcome=outcome, nodeid=f"checks/x.py::{control}[{host}]",
                  started="2026-11-29T10:00:00+00:00", **extra)  # fmt: skip


def head(hosts: list[str]) -> dict[str, Any]:
    return {
        "$schema": EVIDENCE_SCHEMA_ID,
        "schema_version": EVIDENCE_SCHEMA_VERSION,
        "run": {
            "run_id": "0" * 32,
            "job": "audit",
            "started": "2026-11-29T10:00:00+00:00",
            "finished": "2026-11-29T10:01:00+00:00",
            "operator": "root@vm",
            "ci_job": None,
            "certaudit_version": "0.1.0",
            "certaudit_commit": None,
            "inventory": "inv.yml",
            "inventory_sha256": None,
            "waivers_file": None,
            "hosts_expected": hosts,
            "hosts_reached": hosts,
            "policies": {},
            "versions": {"pytest": "9"},
            "exit_status": 1,
        },
        "unreachable": {"gone": "ssh: connect to host gone port 22: Connection refused"},
        "waivers": {"file": None, "file_problem": None, "entries": [], "unused": []},
    }


def facts(host: str, raw: dict[str, Any]) -> HostFacts:
    return HostFacts(host, 0.0, 0.0, True, {}, {}, {}, {}, "", None, None, None, None, raw=raw)


RECORDS = [
    record("web-1", "CRT-01", observed={"days_left": 40, "subject": 'CN=é \u2028 "x"\n'}, expected={"min_days": 30}),
    record("web-1", "REN-01", "fail", message="no timer\nat all", findings=["no timer"], notes=["a", "b"]),
    record("web-2", "CRT-01", "waived", waiver={"index": 1, "ticket": "T-1"}, duration_s=0.5),
]
SNAPSHOTS: dict[str, dict[str, Any]] = {
    "web-2": {"systemd": True, "units": {"certbot.timer": {"ActiveState": "active"}}, "empty": {}, "none": []},
    "web-1": {"files": {"/etc/x": {"exists": False}}, "processes": ["sshd", "nginx \u00e9"]},
}


def streamed(tmp_path: Path, records: list[Record], snapshots: dict[str, dict[str, Any]]) -> tuple[bytes, dict[str, Any]]:
    log = RecordLog(tmp_path)
    for r in records:
        log.append(r)
    snaps = SnapshotLog(tmp_path)
    for host, raw in snapshots.items():
        snaps.add(host, facts(host, raw))
    document_head = head(sorted(snapshots))
    path = tmp_path / "evidence.json"
    write_streamed(path, evidence_parts(document_head, log.lines(), snaps))
    # What certaudit wrote before: the whole document, dumped at once.
    whole = {
        **document_head,
        "results": [json.loads(r.to_json()) for r in records],
        "snapshots": {h: json.loads(snaps.text_of(h)) for h in sorted(snapshots)},
    }
    log.close()
    snaps.close()
    assert path.read_bytes() == laid_out(whole)
    return path.read_bytes(), whole


def laid_out(document: dict[str, Any]) -> bytes:
    """evidence.json's layout (evidence/run.py): the head as json.dumps(indent=1, sort_keys=True) lays
    it out, each result and each snapshot on one line of compact JSON with sorted keys."""
    placeholders = {"results": ["@results@"], "snapshots": {"@host@": "@snapshot@"}}
    text = json.dumps({**document, **placeholders}, indent=1, sort_keys=True)
    results = ",\n".join("  " + json.dumps(r, sort_keys=True) for r in document["results"])
    snapshots = ",\n".join(f"  {json.dumps(h)}: {json.dumps(s, sort_keys=True)}" for h, s in document["snapshots"].items())
    text = text.replace('[\n  "@results@"\n ]', f"[\n{results}\n ]" if results else "[]")
    text = text.replace('{\n  "@host@": "@snapshot@"\n }', f"{{\n{snapshots}\n }}" if snapshots else "{}")
    return text.encode()


def test_the_streamed_file_is_the_document_dumped_at_once(tmp_path: Path) -> None:
    data, whole = streamed(tmp_path, RECORDS, SNAPSHOTS)
    assert json.loads(data) == whole
    # A result a line, a host's snapshot a line: grep finds one.
    assert sum(1 for line in data.splitlines() if line.startswith(b'  {"control": ')) == len(RECORDS)
    assert [r["host"] for r in whole["results"]] == ["web-1", "web-1", "web-2"]  # the order the records were made
    assert list(whole["snapshots"]) == ["web-1", "web-2"]  # by host, whatever order they arrived in


def test_no_record_and_no_snapshot_give_empty_members(tmp_path: Path) -> None:
    data, _ = streamed(tmp_path, [], {})
    assert b' "results": [],\n' in data and b' "snapshots": {},\n' in data


def test_the_streamed_file_is_valid_evidence(tmp_path: Path) -> None:
    snapshot: dict[str, Any] = {"probe_version": 1, "hostname": "web", "time": 1.0, "systemd": True,
                                "files": {"/etc/x": {"path": "/etc/x"}}, "listings": {}, "public_keys": {}, "units": {},
                                "accounts": {}}  # fmt: skip
    data, _ = streamed(tmp_path, RECORDS[:2], {"web-1": snapshot, "web-2": {**snapshot, "hostname": "web-2"}})
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads(data))


def test_the_record_log_gives_back_what_was_appended_in_order(tmp_path: Path) -> None:
    log = RecordLog(tmp_path)
    assert len(log) == 0 and not log and list(log) == []
    many = [record(f"h-{i:04d}", "CRT-01", observed={"pad": "x" * 3000}) for i in range(600)]  # past one read chunk
    for r in many:
        log.append(r)
    assert len(log) == 600 and log
    assert list(log) == many
    log.append(record("late", "KEY-01"))
    assert [r.host for r in log][-2:] == ["h-0599", "late"]
    assert os.listdir(tmp_path) == []  # an anonymous file: nothing a manifest could list
    log.close()
    assert len(log) == 0 and list(log) == []


def test_a_failure_midway_leaves_no_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "evidence.json"

    def parts() -> Iterator[bytes]:
        yield b'{"results": ['
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_streamed(path, parts())
    assert os.listdir(tmp_path) == []


def test_a_failure_midway_keeps_the_previous_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "evidence.json"
    path.write_bytes(b'{"old": true}')

    def parts() -> Iterator[bytes]:
        yield b"{"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_streamed(path, parts())
    assert path.read_bytes() == b'{"old": true}' and os.listdir(tmp_path) == ["evidence.json"]


def test_a_snapshot_is_written_once_a_host(tmp_path: Path) -> None:
    snaps = SnapshotLog(tmp_path)
    snaps.add("web-1", facts("web-1", {"systemd": True}))
    snaps.add("web-1", facts("web-1", {"systemd": False}))  # the host's facts come once: a second is ignored
    assert [(h, json.loads(t)) for h, t in snaps] == [("web-1", {"systemd": True})]
    snaps.close()


def test_evidence_into_a_directory_made_at_the_end_spools_elsewhere_meanwhile(tmp_path: Path) -> None:
    """--evidence may name a directory that does not exist yet (it is made when the file is written):
    the record log cannot live there meanwhile, and must not fail the first result."""
    from types import SimpleNamespace

    from certaudit.plugin import _spool_evidence

    target = tmp_path / "new" / "evidence.json"
    config: Any = SimpleNamespace(getoption=lambda name: str(target), stash={})
    audit: Any = SimpleNamespace(records=RecordLog(), on_facts=None)
    _spool_evidence(config, audit)
    audit.records.append(RECORDS[0])
    assert list(audit.records) == [RECORDS[0]] and audit.on_facts is not None
    audit.records.close()
    assert not (tmp_path / "new").exists()


# --- certaudit/evidence/jsonstream.py: a part read element by element is still untrusted -----------------
def read(data: bytes, max_member: int = 1 << 20) -> tuple[dict[str, Any], list[Any], list[Any]]:
    import io

    from certaudit.evidence.jsonstream import read_object

    items: list[Any] = []
    members: list[Any] = []
    found, _ = read_object(
        io.BytesIO(data), {"results": lambda i, v: items.append((i, v)), "snapshots": lambda k, v: members.append((k, v))},
        max_member,
    )  # fmt: skip
    return found, items, members


def test_the_stream_reader_gives_what_json_loads_gives() -> None:
    document: dict[str, Any] = {
        "a": 1,
        "results": [{"x": 12345678901234567890}, 2.5e-3, "é\u2028"],
        "snapshots": {"h": [1]},
        "z": None,
    }
    data = json.dumps(document, indent=1).encode()
    assert read(data) == ({"a": 1, "z": None}, list(enumerate(document["results"])), [("h", [1])])
    assert read(b'{"results": [], "snapshots": {}}') == ({}, [], [])


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"a": 1, "a": 2}', "given twice"),
        (b'{"snapshots": {"h": 1, "h": 2}}', "given twice"),
        (b'{"a": 1} x', "text after the document"),
        (b'{"results": [1, 2', "expected ']' at character"),
        (b'{"results": 3}', "not an array or an object"),
        (b"[1]", "expected '{'"),
        (b'{"results": ["' + b"x" * (3 << 20) + b'"]}', "a value of more than 1000 characters"),  # past one read
        (b'{"a": "\xff"}', "not UTF-8"),
    ],
)
def test_the_stream_reader_refuses_what_is_not_one_document(data: bytes, says: str) -> None:
    from certaudit.evidence.jsonstream import JsonStreamError

    with pytest.raises(JsonStreamError, match=says):
        read(data, max_member=1000)


def test_snapshots_are_made_once_from_many_threads(tmp_path: Path) -> None:
    """The probe's threads add each host's snapshot as its facts arrive, and the run's thread may add
    the same host again: every host is in the log once, whole."""
    log = SnapshotLog(tmp_path)
    hosts = [f"web-{i}" for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda h: log.add(h, facts(h, SNAPSHOTS["web-2"])), hosts * 3))
    assert log.hosts() == sorted(hosts)
    assert {json.loads(log.text_of(h))["units"]["certbot.timer"]["ActiveState"] for h in hosts} == {"active"}
    log.close()
