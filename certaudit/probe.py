"""Gather every host's facts, concurrently, before any check judges.

One host costs one command over its connection (the remote probe, `remote_probe.py`, run by the
host's python3) and one TLS handshake from the auditing machine to its endpoint. The probes run in
a bounded thread pool; each host has its own time budget, so a slow or dead host costs its own
time and nobody else's.
"""

from __future__ import annotations

import base64
import json
import shlex
import threading
import time
import zlib
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from certaudit.errors import ProbeError
from certaudit.facts import HostFacts, facts_from_probe
from certaudit.inventory import Target
from certaudit.tls import fetch_leaf

REMOTE_SCRIPT = resources.files("certaudit").joinpath("remote_probe.py").read_text()
# The script travels compressed inside the command line and is run by a one-line loader, so the
# host needs nothing but python3; parameters travel as base64 JSON, never as shell words.
LOADER = "import base64,sys,zlib;s=sys.argv.pop(1);exec(compile(zlib.decompress(base64.b64decode(s)),'certaudit-probe','exec'))"
MAX_OUTPUT = 64 * 1024 * 1024


def probe_command(target: Target) -> str:
    policy = target.policy
    params = {
        "domain": policy.domain,
        "service": policy.service,
        "service_user": policy.service_user,
        "service_group": policy.service_group,
        "tls_dir": policy.tls_dir,
        "letsencrypt_dir": policy.letsencrypt_dir,
        "deploy_hook": policy.deploy_hook,
    }
    script = base64.b64encode(zlib.compress(REMOTE_SCRIPT.encode(), 9)).decode()
    encoded = base64.b64encode(json.dumps(params).encode()).decode()
    # The loader pops the script off argv, so the script finds its parameters in sys.argv[1].
    return shlex.join(["python3", "-c", LOADER, script, encoded])


def _result_text(result: Any) -> str:
    stderr = (result.stderr or "").strip()
    return f"exit {result.rc}" + (f": {stderr[-400:]}" if stderr else "")


def probe_host(target: Target, connect_timeout: float) -> dict[str, Any]:
    """Run the remote probe on one host and return its document; raises ProbeError with the cause."""
    try:
        host = target.testinfra_host(connect_timeout)
        result = host.run(probe_command(target))
    except RuntimeError as exc:  # testinfra's ssh backend: exit 255, the connection itself failed
        cause = exc.args[0] if exc.args else exc
        stderr = getattr(cause, "stderr", "") or str(cause)
        raise ProbeError(f"host {target.name} ({target.address}): cannot connect: {' '.join(stderr.split())[:400]}") from None
    except Exception as exc:  # paramiko and local backends raise their own types
        raise ProbeError(f"host {target.name} ({target.address}): cannot connect: {type(exc).__name__}: {exc}") from None
    if result.rc == 124:
        raise ProbeError(f"host {target.name}: the probe exceeded its time budget on the host")
    if result.rc == 127:
        raise ProbeError(f"host {target.name}: python3 is not installed on the host ({_result_text(result)})")
    if result.rc != 0:
        raise ProbeError(f"host {target.name}: the probe failed, {_result_text(result)}")
    if len(result.stdout_bytes) > MAX_OUTPUT:
        raise ProbeError(f"host {target.name}: the probe's answer is over {MAX_OUTPUT} bytes")
    try:
        document = json.loads(result.stdout_bytes)
    except ValueError as exc:
        raise ProbeError(
            f"host {target.name}: the probe's answer is not JSON ({exc}); first bytes: {result.stdout[:120]!r}"
        ) from None
    if not isinstance(document, dict) or "files" not in document:
        raise ProbeError(f"host {target.name}: the probe's answer is not a facts document")
    return document


def gather(target: Target, connect_timeout: float) -> HostFacts:
    document = probe_host(target, connect_timeout)
    policy = target.policy
    endpoint = fetch_leaf(target.address, policy.endpoint_port, policy.domain, timeout=connect_timeout)
    try:
        return facts_from_probe(target.name, document, time.time(), endpoint)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProbeError(f"host {target.name}: the probe's answer is malformed ({type(exc).__name__}: {exc})") from None


@dataclass
class Prober:
    """Probes hosts in a bounded pool; `facts(name)` waits for one host within its budget."""

    connect_timeout: float = 10.0
    host_budget: float = 120.0
    workers: int = 32
    _futures: dict[str, Future[HostFacts]] = field(default_factory=dict)
    _started: dict[str, float] = field(default_factory=dict)
    _pool: ThreadPoolExecutor | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, targets: Iterable[Target]) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="certaudit-probe")
            for target in targets:
                if target.name not in self._futures:
                    self._started[target.name] = time.monotonic()
                    self._futures[target.name] = self._pool.submit(gather, target, self.connect_timeout)

    def facts(self, target: Target) -> HostFacts:
        self.start([target])
        future = self._futures[target.name]
        remaining = self.host_budget - (time.monotonic() - self._started[target.name])
        try:
            return future.result(timeout=max(0.0, remaining))
        except FutureTimeout:
            raise ProbeError(f"host {target.name}: no facts within the per-host budget of {self.host_budget:g} s") from None

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
