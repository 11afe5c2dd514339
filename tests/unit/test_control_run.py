"""certaudit/control_run.py: which controls skip pytest's fixture machinery, and that nobody can tell.

Each test audits this machine (the local connection, as tests/unit/test_report_html.py does) twice,
once as it comes and once with a conftest that makes every control take pytest's own protocol,
and compares what each run recorded: results, JUnit and the terminal's lines.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_report_html import CONFTEST, make_audit_project

pytest_plugins = ["pytester"]

# A conftest hook that notes each test pytest's own protocol set up (the fast path calls no setup hook).
NOTE_SETUPS = textwrap.dedent(
    """\

    def pytest_runtest_setup(item):
        with open("setups.txt", "a") as out:
            out.write(item.nodeid + "\\n")
    """
)
# The same `policy` as certaudit's, defined again: an override, so every control takes pytest's path.
OVERRIDE_POLICY = textwrap.dedent(
    """\

    import pytest

    @pytest.fixture
    def policy(target):
        return target.policy
    """
)


def audit(pytester: pytest.Pytester, conftest_extra: str, *args: str) -> dict[str, Any]:
    (pytester.path / "conftest.py").write_text(CONFTEST + NOTE_SETUPS + conftest_extra)
    (pytester.path / "setups.txt").write_text("")
    out = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        "checks", "--inventory", "inv.yml", "--report-dir", str(out), "-p", "no:cacheprovider", "-rA", *args, timeout=300
    )
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    evidence = json.loads((run / "evidence.json").read_text())
    junit = (run / "junit.xml").read_text()
    for path in out.iterdir():  # the next run gets a directory of its own
        path.rename(pytester.path / f"done-{path.name}")
    timeless_junit = re.sub(
        r'(time|timestamp|hostname)="[^"]*"|&quot;(started|judged_at)&quot;: &quot;[^&]*&quot;|&quot;duration_s&quot;: [0-9.e-]+',
        "",
        _moments_out(junit),
    )
    return {
        "status": result.ret,
        "setups": (pytester.path / "setups.txt").read_text().split(),
        "results": [_timeless(r) for r in evidence["results"]],
        "junit": timeless_junit,
        "lines": [
            re.sub(r"in [0-9.]+s|run [0-9a-f]{32}|\S*/done-\S*|\S*/out/\S*", "", _moments_out(line))
            for line in result.outlines
            if "certaudit: evidence of run" not in line
        ],
    }


# When each run judged, and what it saw left of a certificate then: the only words two runs differ in.
_MOMENT_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00|(?<=days_left)(=|&quot;: |\": )[0-9.e-]+")


def _moments_out(text: str) -> str:
    return _MOMENT_RE.sub(lambda m: f"{m.group(1)}0" if m.group(1) else "X", text)


def _timeless(record: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps({k: v for k, v in record.items() if k not in ("started", "duration_s")}, sort_keys=True)
    timeless: dict[str, Any] = json.loads(_moments_out(text))
    return timeless


def test_controls_skip_pytests_fixture_machinery_and_report_the_same(pytester: pytest.Pytester) -> None:
    make_audit_project(pytester.path, certificate_days=10)
    fast = audit(pytester, "")
    slow = audit(pytester, OVERRIDE_POLICY)
    # On the fast path pytest set up only what is not a plain control: DRL-01 (its drill fixture) and the waiver test.
    assert sorted(Path(n).name for n in fast["setups"]) == [
        "test_drill.py::DRL-01[localhost]",
        "test_waivers.py::test_waiver_is_in_force[no-waivers]",
    ]
    assert len(slow["setups"]) == len(slow["results"]) + 1  # every control, and the waiver test
    assert fast["status"] == slow["status"] == 1  # CRT-01 fails: 10 days left
    assert [r["outcome"] for r in fast["results"]].count("fail") >= 1
    for one, other in zip(fast["results"], slow["results"], strict=True):
        assert one == other, {k: (one[k], other.get(k)) for k in one if one[k] != other.get(k)}
    assert fast["junit"] == slow["junit"]
    assert fast["lines"] == slow["lines"]


@pytest.mark.parametrize(
    ("why", "conftest_extra", "args"),
    [
        ("an autouse fixture", "\nimport pytest\n\n@pytest.fixture(autouse=True)\ndef everywhere():\n    yield\n", ()),
        ("an overridden fixture", OVERRIDE_POLICY, ()),
        ("--setup-show", "", ("--setup-show",)),
        (
            "a mark of the user's",
            "\ndef pytest_collection_modifyitems(items):\n    import pytest\n"
            "    for item in items:\n        item.add_marker(pytest.mark.flaky)\n",
            ("-p", "no:warnings"),
        ),
    ],
)
def test_anything_pytest_would_do_differently_takes_pytests_path(
    pytester: pytest.Pytester, why: str, conftest_extra: str, args: tuple[str, ...]
) -> None:
    make_audit_project(pytester.path)
    run = audit(pytester, conftest_extra, *args)
    assert len(run["setups"]) == len(run["results"]) + 1, why


def test_a_teardown_that_said_something_is_still_shown(pytester: pytest.Pytester) -> None:
    """The terminal lets go of passed setups and teardowns with nothing captured (ReportTrim),
    not of one whose output its summary of a failure shows."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_noisy="""
        import pytest

        @pytest.fixture
        def noisy():
            yield
            print("said at teardown")

        def test_fails(noisy):
            assert False

        def test_passes():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--inventory", "nothing.yml", timeout=120)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Captured stdout teardown*", "said at teardown"])


KEPT_AT_THE_END = textwrap.dedent(
    """\

    def pytest_sessionfinish(session):
        import json
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        import pytest
        kept = [r for reports in reporter.stats.values() for r in reports if isinstance(r, pytest.TestReport)]
        html = [p for p in session.config.pluginmanager.get_plugins() if type(p).__module__.startswith("pytest_html.")]
        with open("kept.json", "w") as out:
            json.dump({
                "passed setups and teardowns": len([r for r in kept if r.when != "call" and r.passed]),
                "records": len([r for r in kept if any(p[0] == "certaudit" for p in r.user_properties)]),
                "pytest-html's reports": sum(len(getattr(p, "_reports", {})) for p in html),
                "reports": len(kept),
            }, out)
    """
)


def test_the_run_lets_go_of_what_no_one_reads_again(pytester: pytest.Pytester) -> None:
    """At the session's end the terminal holds no passed setup or teardown and no record, and
    pytest-html no report: each was let go once its test finished (ReportTrim)."""
    make_audit_project(pytester.path)
    run = audit(pytester, KEPT_AT_THE_END)
    kept = json.loads((pytester.path / "kept.json").read_text())
    assert kept["reports"] >= len(run["results"])  # the terminal's own: a call or a setup report a test
    assert {k: v for k, v in kept.items() if k != "reports"} == {
        "passed setups and teardowns": 0,
        "records": 0,
        "pytest-html's reports": 0,
    }
