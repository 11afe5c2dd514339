"""The bench's own arithmetic (bench/bench_fleet.py): how it counts round trips and judges the targets.

The bench runs on demand (it boots 100 hosts for half an hour); what it concludes from its figures
is pure logic and is tested here, so that a MISSED target cannot be printed as met.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench.bench_fleet import Measurement, ModeResult, count_round_trips, parse_args, table, verdicts
from certaudit.gather.transport import ROUND_TRIPS_ENV, count_round_trip


def measured(what: str, hosts: int, wall_s: float, commands: int = 0, tls: int = 0, rss: float = 100.0) -> Measurement:
    return Measurement(what, hosts, wall_s, 1, rss, commands or hosts, tls or hosts, 2, "ok", cpu_s=1.5, hosts_cpu_s=2.5)


def test_round_trips_are_counted_from_what_the_transport_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = tmp_path / "round-trips.jsonl"
    monkeypatch.setenv(ROUND_TRIPS_ENV, str(counter))
    for host in ("a", "b"):
        count_round_trip(host, "command", "inprocess")
        count_round_trip(host, "tls")
    count_round_trip("a", "command", "openssh")
    assert count_round_trips(counter) == (3, 2, 3, "inprocess+openssh")


def test_each_target_is_judged_and_a_miss_is_said() -> None:
    loopback = ModeResult("loopback", 0.1)
    loopback.rows = [
        measured("certaudit (default connection: inprocess)", 50, 3.7),
        measured("baseline testinfra, ControlMaster (-n 2)", 50, 14.1, commands=1200),
        measured("baseline testinfra, plain (-n 2)", 50, 117.6, commands=1200),
        measured("certaudit (default connection: inprocess)", 100, 21.0, rss=310.0),
    ]
    loopback.gate, loopback.gate_kind = measured("gate", 1, 0.8), "`pytest checks -m gate`, one host"
    said = verdicts([loopback, ModeResult("latency", 40.7)])
    assert "- [loopback] met: round trips per host at most 2: 2.0" in said
    assert any(
        line.startswith("- [loopback] MISSED: at least 8x") and "ControlMaster" in line and "3.8x" in line for line in said
    )
    assert any(line.startswith("- [loopback] met: at least 8x") and "plain" in line and "31.8x" in line for line in said)
    assert any(line.startswith("- [loopback] MISSED: 100 hosts in at most 20 s") for line in said)
    assert "- [loopback] MISSED: peak memory at most 300 MB: 310 MB" in said
    assert any(line.startswith("- [loopback] met: gate on one host at most 1 s") for line in said)
    assert "- [latency] figures only: the targets are for loopback" in said


def test_the_table_names_machine_load_and_cpu() -> None:
    mode = ModeResult("loopback", 0.1, rows=[measured("certaudit (default connection: inprocess)", 10, 1.3)])
    args = argparse.Namespace(repeat=3, delay_ms=20.0)
    text = table([mode], args, "0.00 / 0.01 / 0.05 (1/5/15 min)")
    assert "cores" in text.splitlines()[0] and "load before: 0.00" in text.splitlines()[0]
    assert "| loopback (TCP RTT 0.1 ms) | 10 | certaudit (default connection: inprocess) | 1.30 s | 2.0 (max 2) | 100 MB" in text
    assert "| 1.50 s + 2.50 s |" in text


def test_a_thousand_aliases_are_judged_against_the_scale_targets() -> None:
    """1,000 inventory names over 50 hosts: the row says so, gives the audit's CPU a host and the
    files' sizes, and the issue's 1,000-host targets (CPU a host, wall, memory) are judged."""
    row = Measurement("certaudit (default connection: inprocess)", 1000, 58.0, 1, 290.0, 1000, 1000, 2, "ok",
                      cpu_s=16.0, hosts_cpu_s=70.0, evidence_mb=40.0, report_mb=12.5, real_hosts=50)  # fmt: skip
    mode = ModeResult("loopback", 0.1, rows=[row])
    text = table([mode], argparse.Namespace(repeat=1, delay_ms=20.0), "0.00 / 0.01 / 0.05 (1/5/15 min)")
    assert "| 1000 (50 real) | certaudit (default connection: inprocess) | 58.00 s |" in text
    assert "| 16.00 s + 70.00 s | 16.0 ms | evidence 40.0 MB, report 12.5 MB |" in text
    assert "- [loopback] MISSED: 1,000 hosts: audit CPU at most 15 ms a host: 16.0 ms" in text
    assert "- [loopback] met: 1,000 hosts in at most 60 s: 58.00 s" in text
    assert "- [loopback] met: peak memory at most 300 MB: 290 MB" in text


def test_synthetic_shards_of_one_run_merge_into_one_audit(tmp_path: Path) -> None:
    """--shards: parts made from one run (hosts renamed apart, shard metadata set, own manifest) are
    what `certaudit merge` accepts as the shards of one audit of parts x hosts."""
    from bench.bench_fleet import synthetic_shard
    from certaudit.evidence.manifest import write_manifest
    from certaudit.evidence.merge import merge_runs
    from tests.unit.test_shard import evidence, junit

    hosts = ["bench-a0000", "bench-a0001"]
    run = tmp_path / "run"
    run.mkdir()
    document = evidence(hosts, None, 2, {"bench-a0001": "fail"})
    (run / "evidence.json").write_text(json.dumps(document, indent=1, sort_keys=True))
    (run / "junit.xml").write_text(junit(hosts))
    write_manifest(run)
    parts = [synthetic_shard(run, tmp_path / f"part-{k}", k, 3, 2) for k in (1, 2, 3)]
    merged = merge_runs(parts, tmp_path / "merged")
    assert (merged.shards, merged.hosts, merged.results, merged.exit_status) == (3, 6, 12, 1)
    merged_hosts = json.loads((tmp_path / "merged" / "evidence.json").read_text())["run"]["hosts_expected"]
    assert merged_hosts == [f"{h}-s{k:02d}" for h in hosts for k in (1, 2, 3)]


def test_a_profile_path_that_is_a_file_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "profiles"
    a_file.write_text("")
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--profile", str(a_file)])
    assert stopped.value.code == 2
    assert f"--profile {a_file}: not a directory" in capsys.readouterr().err
    assert parse_args(["--profile", str(tmp_path / "new")]).profile == tmp_path / "new"  # made when the bench runs


def test_the_login_bench_prints_a_flat_cost_and_one_parse_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    """bench_logins on two sizes of known_hosts: every login after the first reuses the parsed files."""
    from bench import bench_logins

    assert bench_logins.main(["--entries", "0,300", "--logins", "3"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["known_hosts", "entries", "CPU"]
    assert [row.split()[0] for row in rows] == ["0", "300"]
    # 300 entries: the known_hosts and the identity, each parsed once for three logins.
    assert rows[1].split()[-1] == "2"


@pytest.mark.parametrize("argv", [["--entries", "ten"], ["--logins", "0"], ["--entries", "-1"]])
def test_the_login_bench_refuses_a_bad_option_in_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bench import bench_logins

    with pytest.raises(SystemExit) as stopped:
        bench_logins.main(argv)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("bench_logins: error:")
