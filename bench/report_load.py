"""Benchmark (on demand, not part of `make test`): how fast the report a person opens loads.

    PYTHONPATH=. .venv/bin/python -m bench.report_load [--sizes 1000,10000] [--rounds 3] [--keep DIR] [--page report.html]

For each size it builds a synthetic result set (17 controls a host; a realistic mix: about 3 % of
hosts with a finding, 1 % unreachable with an error on every control, some waived and N/A results,
observed values of a few hundred characters up to a 2 KB certificate chain dump), renders it through
certaudit's one report renderer (certaudit.evidence.report_view, by way of merge.merged_report, the
page `certaudit merge` writes; a run's report.html has the same summary inside pytest-html's page,
whose table then holds only the failing rows), and loads the file in /usr/bin/chromium, headless,
with a fresh profile each time. It prints the file's size, the time to render it, and the load time
the page itself measures (`#ca-measure`: performance.now() at the load event, after a forced layout,
so parse, script and layout, from navigation start) beside Chromium's whole wall time (process start
to exit, which adds the browser's own start, about a second here) and the CPU time of all its
processes (less dependent on the machine's load than any wall time), and the page's width in a
1366-pixel window.

Nothing here is a timed test: the figures go to bench/README.md and the README's performance section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from certaudit.evidence import merge

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
CONTROLS = ["CRT-01", "CRT-02", "CRT-03", "CRT-04", "DRL-01", "KEY-01", "KEY-02", "KEY-03", "LIVE-01", "LIVE-02",
            "MON-01", "MON-02", "REN-01", "REN-02", "REN-03", "REN-04", "REN-05"]  # fmt: skip
FIX = "See the runbook's section for this control; renew with certbot and reload the service after the deploy hook."


def observed_of(control: str, host: str, rng: random.Random) -> dict[str, Any]:
    """Observations about as long as the real controls record (a chain dump, cron lines, a hook)."""
    if control == "CRT-01":
        return {"days_left": round(rng.uniform(8, 85), 3), "not_after": "2027-02-01T00:00:00+00:00",
                "subject": f"CN={host}", "sans": [host, f"www.{host}", f"api.{host}"],
                "path": "/etc/stemedb/tls/cert.pem"}  # fmt: skip
    if control == "CRT-02":
        return {
            "chain": "\n".join(f"{i}: s:CN={host} i:CN=Example Issuing CA R{i} " + rng.randbytes(150).hex() for i in range(3))
        }
    if control.startswith("REN"):
        return {"cron": [f"0 */12 * * * root certbot renew -q --deploy-hook /usr/local/bin/reload-{i}" for i in range(4)],
                "renewal_conf": {"authenticator": "webroot", "webroot_path": "/var/www/html",
                                 "renew_before_expiry": "30 days"}}  # fmt: skip
    return {"path": f"/etc/stemedb/{control.lower()}.conf", "mode": "0600", "owner": "root", "sha256": rng.randbytes(32).hex(),
            "lines": [f"{control} setting {i} = value {i} for {host}" for i in range(5)]}  # fmt: skip


def synthetic_evidence(hosts: int, seed: int = 16) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 (a reproducible sample, not a secret)
    names = [f"web-{i:05d}.prod.example.com" for i in range(hosts)]
    results: list[dict[str, Any]] = []
    unreachable: dict[str, str] = {}
    for index, host in enumerate(names):
        down = index % 100 == 37  # 1 %
        failing = set(rng.sample(CONTROLS, rng.choice((1, 1, 2)))) if index % 33 == 5 else set()  # 3 %
        if down:
            unreachable[host] = f"ssh to {host}: connect to host 10.0.{index // 250}.{index % 250} port 22: Connection timed out"
        for control in CONTROLS:
            outcome, message, findings = "pass", "", []
            if down:
                outcome, message = "error", f"{control} on {host}: not determined: {unreachable[host]}"
            elif control in failing:
                outcome = "fail"
                findings = [f"{control}: expected 0600 root:root, found 0644 www-data on {host}"]
                message = f"{control} on {host}: " + "; ".join(findings)
            elif control == "REN-05" and index % 3 == 0:
                outcome, message = "not applicable", "certbot older than 4.1: no ARI"
            elif control == "KEY-03" and index % 50 == 7:
                outcome, message = "waived", "waived: SEC-101 key rotation scheduled"
            results.append({
                "control": control, "title": f"{control} title of the control, as the catalog says", "host": host,
                "outcome": outcome, "message": message, "observed": {} if down else observed_of(control, host, rng),
                "expected": {"max_mode": "0600", "owner": "root", "renew_before_days": 30}, "findings": findings,
                "notes": [], "fix": FIX, "gate": control == "CRT-01", "nodeid": f"checks/test_{control.lower()}.py::test[{host}]",
                "started": "2026-11-29T12:00:00+00:00", "duration_s": 0.004, "waiver": None,
            })  # fmt: skip
    policy = {"warn_days": 30, "crit_days": 7, "domain": "example.com"}
    run = {"run_id": "0" * 32, "job": "bench", "started": "2026-11-29T12:00:00+00:00",
           "finished": "2026-11-29T12:01:00+00:00", "operator": "bench@localhost", "ci_job": None,
           "certaudit_version": "bench", "certaudit_commit": None, "inventory": "bench.yml", "inventory_sha256": "0" * 64,
           "waivers_file": None, "hosts_expected": names, "hosts_reached": [h for h in names if h not in unreachable],
           "policies": dict.fromkeys(names, policy), "versions": {}, "exit_status": 1,
           "merged_from": [{"directory": f"shard-{i}"} for i in range(max(1, hosts // 1000))]}  # fmt: skip
    return {"run": run, "results": results, "unreachable": unreachable}


def load(page: Path, profile: Path) -> tuple[float, float, int, float]:
    """(page load ms as the page measured it, chromium wall s, page width px, chromium CPU s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--window-size=1366,900", "--dump-dom",
         page.resolve().as_uri() + "#ca-measure"],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    head = done.stdout[:2000]
    found = {k: re.search(rf'{k}="(\d+)"', head) for k in ("data-ca-loaded-ms", "data-ca-width")}
    if not all(found.values()):
        raise SystemExit(f"chromium did not load {page} (exit {done.returncode}): {done.stderr[-2000:]}")
    ms, width = (int(m.group(1)) for m in found.values() if m)
    return float(ms), wall, width, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the pages in this directory")
    parser.add_argument("--page", type=Path, action="append", default=[], help="also load this report.html (a real run's)")
    args = parser.parse_args()
    load_avg = os.getloadavg()
    print(f"# report load, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load {load_avg[0]:.2f}")
    print(f"# PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")
    print(
        "| hosts | results | report.html | render | page load (median, min-max) | chromium wall | chromium CPU | width at 1366 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for path in args.page:
            loads = [load(path, Path(tmp) / f"profile-page-{r}") for r in range(args.rounds)]
            ms = [x[0] for x in loads]
            wall, cpu = statistics.median(x[1] for x in loads), statistics.median(x[3] for x in loads)
            print(f"| {path} | | {path.stat().st_size / 1e6:.2f} MB | | {statistics.median(ms) / 1000:.2f} s | "
                  f"{wall:.1f} s | {cpu:.1f} s | {loads[0][2]} px |", flush=True)  # fmt: skip
        for size in (int(s) for s in args.sizes.split(",") if s):
            evidence = synthetic_evidence(size)
            started = time.perf_counter()
            html = merge.merged_report(evidence)
            render = time.perf_counter() - started
            page = out / f"report-{size}.html"
            page.write_text(html, encoding="utf-8")
            loads = [load(page, Path(tmp) / f"profile-{size}-{r}") for r in range(args.rounds)]
            ms = [x[0] for x in loads]
            walls = [x[1] for x in loads]
            print(
                f"| {size:,} | {len(evidence['results']):,} | {page.stat().st_size / 1e6:.1f} MB | {render:.1f} s | "
                f"{statistics.median(ms) / 1000:.2f} s ({min(ms) / 1000:.2f}-{max(ms) / 1000:.2f}) | "
                f"{statistics.median(walls):.1f} s | {statistics.median(x[3] for x in loads):.1f} s | {loads[0][2]} px |",
                flush=True,
            )


if __name__ == "__main__":
    main()
