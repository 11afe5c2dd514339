"""DRL-*: a real renewal reaches the wire (runbook: Operational Best Practices 3, "Test renewal quarterly").

The only control that changes a host: it runs with `--renewal-drill` on hosts whose inventory sets
`certaudit_drill_ok: true`, and is not applicable anywhere else (see certaudit/jobs/drill.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from certaudit.controls import control
from certaudit.errors import Undeterminable
from certaudit.host.facts import HostFacts
from certaudit.inventory import Target
from certaudit.policy import Policy
from certaudit.record import Evidence

if TYPE_CHECKING:
    # Imported where the drill runs: every run collects this module (the gate too), few drill.
    from certaudit.jobs.drill import DrillSettings


@pytest.fixture
def renewal_drill(request: pytest.FixtureRequest, target: Target, evidence: Evidence) -> DrillSettings:
    """The drill's settings; skips (not applicable, with the reason) before any fact is asked for."""
    from certaudit.jobs.drill import DrillSettings, reason_not_run

    settings = DrillSettings.from_config(request.config)
    reason = reason_not_run(settings.enabled, target.policy)
    if reason:
        pytest.skip(reason)
    return settings


def _short(sha256: str | None) -> str:
    return f"{sha256[:16]}…" if sha256 else "nothing"


@control(
    "DRL-01",
    title="Drill the renewal: a forced renewal runs the deploy hook, reloads the service and serves the new certificate",
    source="Operational Best Practices 3; Prevention › Automated Renewal 3",
)
def test_renewal_drill(
    renewal_drill: DrillSettings, facts: HostFacts, target: Target, policy: Policy, evidence: Evidence
) -> None:
    """Rationale: every static check can pass while the next renewal still ends in an outage: a
    deploy hook that fails halfway, a reload the service ignores. `certbot renew --dry-run`
    cannot show it, because dry runs skip deploy hooks, and certbot exits 0 even when a deploy
    hook fails. Only a real renewal proves the whole chain, so the quarterly audit runs one.

    Check: on the host, `certbot renew --cert-name <domain> --force-renewal
    --no-random-sleep-on-renew` (with `certaudit_acme_ca_bundle` as REQUESTS_CA_BUNDLE) exits 0
    and the lineage holds a new certificate; certbot ran a deploy hook and it reported no error;
    systemd reloaded or restarted the service afterwards (its journal); the service's certificate
    file holds the new certificate; and, seen from the auditing machine, the endpoint serves it.
    Old and new fingerprints and validity times are recorded.

    Fix: run the hook as certbot does, `RENEWED_LINEAGE=/etc/letsencrypt/live/<domain>
    /etc/letsencrypt/renewal-hooks/deploy/reload-stemedb.sh`, fix what it reports, reload the
    service (`systemctl reload stemedb-api`), then repeat the drill (`--renewal-drill`).
    """
    from certaudit.jobs.drill import run_drill, unit_name

    unit = unit_name(policy.service)
    evidence.expect(
        renewal="certbot renew exits 0 and the lineage holds a new certificate",
        deploy_hook="certbot runs a deploy hook and it reports no error",
        reload=f"systemd reloads or restarts {unit} after the renewal",
        service_file=f"{policy.tls_cert} holds the new certificate",
        served=f"the endpoint serves the new certificate (within {renewal_drill.served_wait_s:g} s)",
    )
    euid = facts.raw.get("euid")
    if isinstance(euid, int) and euid != 0:
        # certbot renews as root only: as another account it stops on /etc/letsencrypt, and that exit
        # status says nothing about the host's renewal chain.
        raise Undeterminable(
            f"host {facts.host}: the drill renews as root, and commands run here as uid {euid} "
            f"(ansible_user {target.variables.get('ansible_user') or '?'} without ansible_become): not run"
        )
    result = run_drill(target, renewal_drill)
    before, after = result.before, result.after
    evidence.observe(
        command=result.command,
        started=result.started,
        finished=result.finished,
        exit_status=result.exit_status,
        old_sha256=before.lineage_sha256,
        new_sha256=after.lineage_sha256,
        old_not_before=before.lineage_not_before,
        old_not_after=before.lineage_not_after,
        new_not_before=after.lineage_not_before,
        new_not_after=after.lineage_not_after,
        served_sha256=after.served_sha256,
        hooks_run=list(result.certbot.hooks_run),
        hook_errors=list(result.certbot.hook_errors),
        reload_jobs=list(result.journal.jobs) if result.journal else None,
        service_log=list(result.journal.service_lines) if result.journal else None,
        journal_error=result.journal_error or None,
        before=before.as_evidence(),
        after=after.as_evidence(),
        served_wait_s=result.served_wait_s,
        certbot_output=list(result.output_tail),
    )

    # The renewal itself.
    last_line = result.output_tail[-1] if result.output_tail else "no output"
    if result.exit_status is None:
        evidence.require(False, f"certbot renew did not finish within {result.certbot_timeout_s:g} s")
    else:
        evidence.require(result.exit_status == 0, f"certbot renew exited {result.exit_status}: {last_line}")
    renewed = after.lineage_sha256 is not None and after.lineage_sha256 != before.lineage_sha256
    if after.lineage_sha256 is None:
        evidence.require(False, f"the lineage's certificate cannot be read after the renewal: {after.lineage_error}")
    else:
        evidence.require(
            renewed, f"certbot issued no new certificate: {policy.live_dir}/cert.pem is still {_short(after.lineage_sha256)}"
        )

    # The deploy hook: certbot's own words, since its exit status ignores a failing hook.
    evidence.require(
        bool(result.certbot.hooks_run), "certbot ran no deploy hook: nothing installs or reloads a renewed certificate"
    )
    for error in result.certbot.hook_errors:
        evidence.require(False, f"the deploy hook failed: {error}")

    unknown_reload = ""
    # The reload, in the journal. A service that serves the new certificate without one (it
    # watches its files) has picked it up all the same: a note, not a finding.
    serves_new = renewed and after.served_sha256 == after.lineage_sha256
    if result.journal is not None and result.journal.reloaded:
        pass
    elif serves_new:
        why = result.journal_error or f"no reload or restart job of {unit} in its journal"
        evidence.note(f"{why}; the service serves the new certificate all the same")
    elif result.journal is None:
        # The journal was not read: whether the service reloaded is unknown, not absent.
        unknown_reload = f"the reload of {unit} cannot be shown: {result.journal_error}"
    else:
        evidence.require(
            False,
            f"{unit} was not reloaded or restarted after the renewal (no finished reload, restart or start job in its journal)",
        )

    # What the service reads and what it serves.
    if renewed:
        evidence.require(
            after.service_file_sha256 == after.lineage_sha256,
            f"{policy.tls_cert} still holds {_short(after.service_file_sha256)}, not the renewed {_short(after.lineage_sha256)}"
            + (f" ({after.service_file_error})" if after.service_file_error else ""),
        )
        evidence.require(
            serves_new,
            f"the endpoint still serves {_short(after.served_sha256)}, not the renewed {_short(after.lineage_sha256)}, "
            f"{result.served_wait_s:g} s after the renewal" + (f" ({after.served_error})" if after.served_error else ""),
        )
    if unknown_reload:
        if not evidence.findings:
            raise Undeterminable(f"host {target.name}: {unknown_reload}")
        evidence.note(unknown_reload)
