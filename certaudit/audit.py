"""One audit run's state, shared by the pytest plugin, the HTML report and the run's evidence.

It sits below all three (they import it; it imports none of them), so the plugin can hand the
report and the run directory the same state without an import circle.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from certaudit.errors import ProbeError
from certaudit.gather.probe import Prober
from certaudit.host.facts import HostFacts
from certaudit.inventory import Inventory, Target, load_inventory, targets_from_specs
from certaudit.jobs import gate
from certaudit.jobs.shard import Shard, ShardError, parse_shard
from certaudit.record import Record
from certaudit.waivers import Waivers, load_waivers

DEFAULT_INVENTORY = "inventories/local.yml"
DEFAULT_WAIVERS = "inventories/waivers.yml"
AUDIT_KEY = pytest.StashKey["Audit"]()


class Audit:
    """The run's state: the inventory, the prober, the snapshots and every record written."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._inventory: Inventory | None = None
        self.prober = Prober(
            connect_timeout=config.getoption("connect_timeout"),
            host_budget=config.getoption("host_budget"),
        )
        self.records: list[Record] = []
        self.started = dt.datetime.now(dt.UTC)
        self.facts: dict[str, HostFacts] = {}
        self.probe_errors: dict[str, str] = {}
        self.run_id = uuid.uuid4().hex
        self._waivers: Waivers | None = None
        self.gate = gate.requested(config)  # a gate run: CRT-01 reads it through the gate_mode fixture
        self.job_problems: list[str] = []
        self.shard: Shard | None = None
        self.inventory_hosts = 0  # hosts of the whole inventory, before --shard
        if config.getoption("shard", None):
            try:
                self.shard = parse_shard(config.getoption("shard"))
            except ShardError as exc:
                raise pytest.UsageError(f"certaudit: {exc}") from None

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
                self._inventory = Inventory(self._inventory.path, tuple(targets))
        return self._inventory

    def facts_of(self, target: Target) -> HostFacts:
        if target.name in self.probe_errors:
            raise ProbeError(self.probe_errors[target.name])
        try:
            facts = self.prober.facts(target)
        except ProbeError as exc:
            self.probe_errors[target.name] = str(exc)
            raise
        self.facts[target.name] = facts
        return facts
