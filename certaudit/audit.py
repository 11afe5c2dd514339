"""One audit run's state, shared by the pytest plugin, the HTML report and the run's evidence.

It sits below all three (they import it; it imports none of them), so the plugin can hand the
report and the run directory the same state without an import circle.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import math
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from certaudit.errors import CertauditError, ProbeError
from certaudit.gather.probe import PROBED_AHEAD, Prober
from certaudit.host.facts import HostFacts
from certaudit.inventory import Inventory, Target, load_inventory, targets_from_specs
from certaudit.jobs import gate
from certaudit.jobs.fleet import HostSummary, domains_of
from certaudit.jobs.shard import Shard, ShardError, parse_shard
from certaudit.readers import shown_text
from certaudit.record import Evidence, RecordLog
from certaudit.waivers import Waivers, load_waivers

if TYPE_CHECKING:
    # The lifetime what-if (and what it reads: certbot's release, the run gap, alert rules) is imported
    # by the runs that ask for one (_lifetimes, what_if_rows), not by every run's start.
    from certaudit.jobs import whatif

DEFAULT_INVENTORY = "inventories/local.yml"
DEFAULT_WAIVERS = "inventories/waivers.yml"
AUDIT_KEY = pytest.StashKey["Audit"]()
EVIDENCE_KEY = pytest.StashKey[Evidence]()  # a control item's evidence, from its setup to its last report
# A job name becomes a directory name and a title: a safe file name, never a path.
JOB_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
# Seconds: finite and positive; a day bounds any one host however slow (a bound nobody reaches).
MAX_SECONDS = 86400.0


@functools.cache
def freeze_the_start() -> None:
    """Take what the process holds once its plugins are loaded out of the cyclic collector's way.

    pytest, its plugins and certaudit are some 700 modules, and their objects live until the
    process ends: every full collection walks them again for nothing. pytest runs one at its end
    (its unraisable-exception check), the interpreter more while it exits, and a long audit many:
    together about a tenth of the gate's CPU. Once a process (cached): a later run in the same
    process (pytester) must not freeze the garbage an earlier one left.
    """
    gc.freeze()


def check_job(job: str) -> str:
    """The job name, or CertauditError: it names a directory, so `../../x` must never pass."""
    if not JOB_RE.fullmatch(job) or job.endswith(".partial"):
        raise CertauditError(
            f"--job {shown_text(repr(job), 80)}: expected a name of letters, digits, '.', '_' and '-' "
            "(at most 64, starting with a letter or digit)"
        )
    return job


def check_seconds(option: str, value: float) -> float:
    """A time bound given on the command line: a positive, finite number of seconds up to a day."""
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise CertauditError(f"{option} {value!r}: expected a number of seconds above 0 and at most {MAX_SECONDS:g}")
    return value


class Audit:
    """The run's state: the inventory, the prober, the snapshots and every record written."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._inventory: Inventory | None = None
        self._inventory_error: CertauditError | None = None  # an inventory is read once, even when it fails
        try:
            connect_timeout = check_seconds("--connect-timeout", config.getoption("connect_timeout"))
            host_budget = check_seconds("--host-budget", config.getoption("host_budget"))
            check_job(config.getoption("job"))
        except CertauditError as exc:
            raise pytest.UsageError(f"certaudit: {exc}") from None
        self.prober = Prober(
            connect_timeout=connect_timeout, host_budget=host_budget, on_gathered=self._gathered, ahead=PROBED_AHEAD
        )
        self.complete = False  # set when the session ends: every selected control judged, no stop
        self.exit_status: int | None = None
        self.records = RecordLog()  # each record as made, in a temporary file (its directory set with the run's)
        self.started = dt.datetime.now(dt.UTC)
        # The run's hosts whose facts came in; their facts are held until their last control is
        # judged (settle), then only what the run's end reads of them is kept: a fleet domain's
        # host's summary (FLT-* and the merge), its what-if facts, its certificate's expiry.
        self.reached: set[str] = set()
        self.facts: dict[str, HostFacts] = {}
        self.summaries: dict[str, HostSummary] = {}
        self.what_if_read: dict[str, whatif.WhatIfFacts] = {}
        self.expiries: dict[str, float | None] = {}
        self._fleet_members: frozenset[str] | None = None
        # The items still to read each host's facts, set when the run's items are known (expect).
        self._reader_host: dict[str, str] = {}
        self._pending: dict[str, int] = {}
        # Told of each host of the run whose facts arrive, once, in the probe's thread (the evidence's snapshot log).
        self.on_facts: Callable[[str, HostFacts], None] | None = None
        self.probe_errors: dict[str, str] = {}
        self._names: tuple[Inventory | None, frozenset[str]] | None = None  # the run's hosts, of which inventory
        # A shard's hosts of a fleet domain (FLT-*): probed and summarised for `certaudit merge`.
        self.fleet_hosts: dict[str, Target] = {}
        self.without_subject: set[str] = set()  # controls with no host or domain to judge in this run
        self.run_id = uuid.uuid4().hex
        self._waivers: Waivers | None = None
        self.gate = gate.requested(config)  # a gate run: CRT-01 reads it through the gate_mode fixture
        self.job_problems: list[str] = []
        self.lifetimes = self._lifetimes(config)  # --lifetime-what-if, or the quarterly job's default
        self._what_if: list[whatif.Row] | None = None
        self.shard: Shard | None = None
        self.inventory_hosts = 0  # hosts of the whole inventory, before --shard
        if config.getoption("shard", None):
            try:
                self.shard = parse_shard(config.getoption("shard"))
            except ShardError as exc:
                raise pytest.UsageError(f"certaudit: {shown_text(str(exc), 300)}") from None
        freeze_the_start()

    def _lifetimes(self, config: pytest.Config) -> tuple[int, ...]:
        given = config.getoption("lifetime_what_if", None)
        if not given and not config.getoption("quarterly", False):
            return ()
        from certaudit.jobs import whatif

        if given:
            try:
                return whatif.parse_lifetimes(given)
            except whatif.WhatIfError as exc:
                raise pytest.UsageError(f"certaudit: {exc}") from None
        return whatif.quarterly_default(self.started.date())  # the quarterly job's default, by the audit's own clock

    def what_if_rows(self) -> list[whatif.Row]:
        """The lifetime what-if's rows, judged once every record is in (the evidence and the report share them)."""
        if self._what_if is None:
            from certaudit.jobs import whatif

            inventory = self._inventory
            policies = {t.name: t.policy for t in inventory} if inventory is not None and self.lifetimes else {}
            self._what_if = whatif.what_if(self.lifetimes, policies, self.what_if_read, self.records)
        return self._what_if

    def inventory_if_loaded(self) -> Inventory | None:
        return self._inventory

    def waivers(self) -> Waivers:
        if self._waivers is None:
            given = self.config.getoption("waivers")
            path = Path(given) if given else Path(self.config.rootpath) / DEFAULT_WAIVERS
            self._waivers = load_waivers(path, self.started.date())
            if given and not path.exists():
                self._waivers.path, self._waivers.file_problem = given, "does not exist"
        return self._waivers

    def inventory(self) -> Inventory:
        """The inventory, read once: a failure is remembered, so an executable inventory is never
        run again, nor a slow one waited for again, for the next control."""
        if self._inventory_error is not None:
            raise self._inventory_error
        try:
            return self._load_inventory()
        except CertauditError as exc:
            self._inventory_error = exc
            raise

    def _load_inventory(self) -> Inventory:
        if self._inventory is None:
            specs = self.config.getoption("hosts", None)
            path = self.config.getoption("inventory")
            limit = self.config.getoption("limit")
            if specs and not path:
                self._inventory = targets_from_specs(
                    [s for s in specs.split(",") if s],
                    ssh_config=self.config.getoption("ssh_config", None),
                    ssh_identity_file=self.config.getoption("ssh_identity_file", None),
                )
            else:
                path = path or str(Path(self.config.rootpath) / DEFAULT_INVENTORY)
                names = [n.strip() for n in limit.split(",") if n.strip()] if limit else None
                self._inventory = load_inventory(path, iter(names) if names else None)
            self.inventory_hosts = len(self._inventory.targets)
            if self.shard is not None:
                # Before any host is probed: a host outside this shard is never touched.
                targets = self.shard.select(self._inventory.targets, lambda t: t.name)
                self._inventory = Inventory(self._inventory.path, tuple(targets), self._inventory.every_host)
        return self._inventory

    def _gathered(self, target: Target, facts: HostFacts) -> None:
        """In a probe thread, as a host's facts are gathered: a host of this run is told to on_facts
        there (a host outside it, of a fleet domain, only ever through facts_of)."""
        on_facts = self.on_facts
        if on_facts is not None and target.name in self._run_names():
            on_facts(target.name, facts)

    def _run_names(self) -> frozenset[str]:
        if self._names is None or self._names[0] is not self._inventory:
            inventory = self._inventory
            self._names = (inventory, frozenset(t.name for t in inventory.targets) if inventory is not None else frozenset())
        return self._names[1]

    def facts_of(self, target: Target, *, of_run: bool = True) -> HostFacts:
        """The host's snapshot; `of_run=False` for a host outside --limit that a fleet control reads
        (the other hosts of a domain): judged from, but not a host of this run's evidence."""
        if target.name in self.probe_errors:
            raise ProbeError(self.probe_errors[target.name])
        try:
            facts = self.prober.facts(target)
        except ProbeError as exc:
            if of_run:
                self.probe_errors[target.name] = str(exc)
            raise
        if of_run and target.name not in self.reached:
            self.reached.add(target.name)  # on_facts was told in the probe's thread (_gathered)
            self.facts[target.name] = facts
            self._keep(target, facts)
        return facts

    def summary_of(self, target: Target, *, of_run: bool = True) -> HostSummary:
        """The host's fleet summary (FLT-*); a host the probe could not reach has one saying why."""
        summary = self.summaries.get(target.name)
        if summary is None:
            try:
                facts = self.facts_of(target, of_run=of_run)
                # A run's host was summarised as it came in (_keep); another only now.
                summary = self.summaries.get(target.name) or HostSummary.of(facts, target.policy)
            except ProbeError as exc:
                summary = HostSummary.unreached(target.name, target.policy.domain, str(exc))
            self.summaries[target.name] = summary
            if not of_run or target.name not in self._pending:
                # No control of the run will read its facts again: its summary is all that is kept.
                self.settle(target.name)
        return summary

    def _keep(self, target: Target, facts: HostFacts) -> None:
        """What the run's end reads of a reached host, taken from its facts while they are held."""
        if target.name in self._fleet_names():
            self.summaries[target.name] = HostSummary.of(facts, target.policy)
        if self.lifetimes:
            from certaudit.jobs import whatif

            self.what_if_read[target.name] = whatif.WhatIfFacts.of(facts, target.policy)
        if self.config.getoption("prometheus_textfile", None):
            from certaudit.jobs import prometheus

            self.expiries[target.name] = prometheus.expiry_seconds(facts, target.policy)

    def _fleet_names(self) -> frozenset[str]:
        """The run's hosts of a fleet domain, and a shard's (whose summaries the merge judges)."""
        if self._fleet_members is None:
            inventory = self._inventory
            domains = domains_of(inventory, inventory.every_host) if inventory is not None else []
            self._fleet_members = frozenset(t.name for d in domains for t in d.hosts) | set(self.fleet_hosts)
        return self._fleet_members

    def expect(self, readers: Mapping[str, str]) -> None:
        """The run's items that will read a host's facts (the facts fixture), by node id, and their
        host: once all of a host's have finished, its facts are let go of (settle)."""
        self._reader_host = dict(readers)
        self._pending = {}
        for name in readers.values():
            self._pending[name] = self._pending.get(name, 0) + 1

    def finished(self, nodeid: str) -> None:
        """An item has finished: the last of a host's readers settles it."""
        name = self._reader_host.pop(nodeid, None)
        if name is None:
            return
        left = self._pending.pop(name, 1) - 1
        if left > 0:
            self._pending[name] = left
        else:
            self.settle(name)

    def settle(self, name: str) -> None:
        """The host's controls are done with its facts: let go of them (what the run's end reads
        was kept as they came in), so the prober may gather the next host's."""
        self.facts.pop(name, None)
        self.prober.release(name)

    def settle_all(self) -> None:
        """At the run's end: every host still held (its controls did not all run)."""
        for name in list(self.facts):
            self.settle(name)
