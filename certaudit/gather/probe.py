"""Gather every host's facts, concurrently, before any check judges.

One host costs one command over its connection (the remote probe, `remote_probe.py`, run by the
host's python3) and one TLS handshake from the auditing machine to its endpoint. The probes run in
a bounded thread pool; each host has its own time budget, so a slow or dead host costs its own
time and nobody else's.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import marshal
import resource
import shlex
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from certaudit.errors import ProbeError
from certaudit.gather.tls import fetch_leaf
from certaudit.gather.transport import (
    CommandResult,
    DeadlineExceeded,
    TransportError,
    count_round_trip,
    run_command,
    sudo_refusal,
)
from certaudit.host.facts import HostFacts, facts_from_probe
from certaudit.inventory import Target
from certaudit.policy import PROMETHEUS_GROUP
from certaudit.redact import redact_secrets

REMOTE_SCRIPT = resources.files("certaudit.gather").joinpath("remote_probe.py").read_text()
SCRIPT_NAME = "certaudit-probe"  # the file name tracebacks on the host give the script
# The script travels compressed inside the command line and is run by a one-line loader, so the
# host needs nothing but python3; parameters travel as base64 JSON, never as shell words.
# binascii, not base64: base64 imports re, a sixth of what the probe's imports cost the host.
# The script also travels compiled, marshalled behind this interpreter's bytecode magic number: a
# host whose python3 has the same magic (what a .pyc needs) runs that and skips compiling 1,200
# lines, 8 ms or more of its CPU; any other host compiles the source.
LOADER = (
    "import binascii,marshal,sys,zlib;a=sys.argv;s=a.pop(1);c=zlib.decompress(binascii.a2b_base64(a.pop(1)));"
    "m=getattr(sys.modules.get('_frozen_importlib_external'),'MAGIC_NUMBER',None);"
    "exec(marshal.loads(c[len(m):]) if m and c[:len(m)]==m else "
    f"compile(zlib.decompress(binascii.a2b_base64(s)),'{SCRIPT_NAME}','exec'))"
)


def encode_script(script: str) -> tuple[str, str]:
    """The script as the loader takes it: its source and its code for this interpreter, each compressed and base64."""
    # dont_inherit: this module's __future__ imports are not the script's; optimize=0: as the host's python3 -I -S runs.
    code = marshal.dumps(compile(script, SCRIPT_NAME, "exec", dont_inherit=True, optimize=0))

    def packed(blob: bytes) -> str:
        # zlib's default level: 9 saves a few dozen bytes and costs milliseconds of every audit's start.
        return base64.b64encode(zlib.compress(blob, 6)).decode()

    return packed(script.encode()), packed(importlib.util.MAGIC_NUMBER + code)


SCRIPT_B64, CODE_B64 = encode_script(REMOTE_SCRIPT)
MAX_OUTPUT = 64 * 1024 * 1024  # the probe's answer: read up to this and no further, on every path
# paramiko logs each failed connection with its traceback, which pytest would print in the audit's
# output; the failure itself reaches the report as the host's error.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)
DEFAULT_BUDGET = 120.0


def probe_argv(target: Target) -> list[str]:
    """The probe as an argv for the host: python3, the loader, the compressed script, the parameters."""
    policy = target.policy
    params = {
        "domain": policy.domain,
        "service": policy.service,
        "service_user": policy.service_user,
        "service_group": policy.service_group,
        "tls_dir": policy.tls_dir,
        "letsencrypt_dir": policy.letsencrypt_dir,
        "deploy_hook": policy.deploy_hook,
        # A Prometheus server's rules are read (and tested with its promtool) on that group's hosts only.
        "prometheus": PROMETHEUS_GROUP in policy.groups,
        "prometheus_config": policy.prometheus_config,
        "warn_days": policy.warn_days,
        "crit_days": policy.crit_days,
    }
    encoded = base64.b64encode(json.dumps(params).encode()).decode()
    # The loader pops the script and its code off argv, so the script finds its parameters in sys.argv[1].
    # -I: no PYTHON* variable or user site of the account can change what the probe runs; -S: no
    # site-packages either (the probe needs the standard library only), and a few ms less a host.
    return ["python3", "-I", "-S", "-c", LOADER, SCRIPT_B64, CODE_B64, encoded]


def probe_command(target: Target) -> str:
    return shlex.join(probe_argv(target))


def _result_text(result: CommandResult) -> str:
    # Redacted before it is cut: a cut can split a key's BEGIN line from its body.
    stderr = redact_secrets(result.stderr.decode("utf-8", "replace").strip())
    return f"exit {result.rc}" + (f": {stderr[-400:]}" if stderr else "")


def _over_budget(target: Target, budget: float | None) -> ProbeError:
    within = f" of {budget:g} s" if budget is not None else ""
    return ProbeError(f"host {target.name}: no facts within the per-host budget{within}")


def probe_host(
    target: Target, connect_timeout: float, deadline: float | None = None, budget: float | None = None
) -> dict[str, Any]:
    """Run the remote probe on one host and return its document; raises ProbeError with the cause.

    `deadline` (time.monotonic()) ends the wait: the connection is closed and its ssh killed.
    """
    deadline = deadline if deadline is not None else time.monotonic() + DEFAULT_BUDGET
    try:
        result = run_command(target, probe_argv(target), connect_timeout, deadline, MAX_OUTPUT)
    except TransportError as exc:
        raise ProbeError(f"host {target.name} ({target.address}): cannot connect: {exc}") from None
    except DeadlineExceeded:
        raise _over_budget(target, budget) from None
    # First: reading stopped at the cap and the command was ended there, so its exit status says nothing.
    if result.truncated:
        raise ProbeError(
            f"host {target.name}: the probe's answer is over the {MAX_OUTPUT // (1024 * 1024)} MB cap "
            f"({MAX_OUTPUT} bytes); reading stopped there"
        )
    if result.rc == 124:
        raise ProbeError(f"host {target.name}: the probe exceeded its time budget on the host")
    if result.rc == -1:  # paramiko's word for "no exit status": the session ended under the probe
        raise ProbeError(f"host {target.name} ({target.address}): the connection was lost before the probe finished")
    refused = sudo_refusal(target, result)
    if refused is not None:
        raise ProbeError(f"host {target.name}: no facts: {refused}")
    if result.rc == 127:
        raise ProbeError(f"host {target.name}: python3 is not installed on the host ({_result_text(result)})")
    if result.rc != 0:
        raise ProbeError(f"host {target.name}: the probe failed, {_result_text(result)}")
    try:
        document = json.loads(result.stdout)
    except ValueError as exc:
        raise ProbeError(
            f"host {target.name}: the probe's answer is not JSON ({exc}); first bytes: "
            f"{result.stdout[:120].decode('utf-8', 'replace')!r}"
        ) from None
    if not isinstance(document, dict) or "files" not in document:
        raise ProbeError(f"host {target.name}: the probe's answer is not a facts document")
    return document


def gather(target: Target, connect_timeout: float, deadline: float | None = None, budget: float | None = None) -> HostFacts:
    deadline = deadline if deadline is not None else time.monotonic() + DEFAULT_BUDGET
    document = probe_host(target, connect_timeout, deadline, budget)
    policy = target.policy
    left = deadline - time.monotonic()
    if left <= 0:
        raise _over_budget(target, budget)
    count_round_trip(target.name, "tls")
    endpoint = fetch_leaf(target.address, policy.endpoint_port, policy.domain, timeout=min(connect_timeout, left))
    try:
        return facts_from_probe(target.name, document, time.time(), endpoint)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProbeError(f"host {target.name}: the probe's answer is malformed ({type(exc).__name__}: {exc})") from None


# What one pool worker may hold open at once: the ssh client's three pipes (or the in-process
# client's socket), the TLS socket, and a few more during a fork; and what the rest of the audit
# (pytest, its reports, ansible-inventory's pipes) may hold.
FDS_PER_WORKER = 8
FDS_SPARE = 64
# An audit probes this many hosts ahead of the one it judges: enough to keep every worker busy
# while it judges, few enough that a thousand hosts' facts are never all held at once.
PROBED_AHEAD = 64
START_POLL_S = 0.5
GRACE_S = 5.0


def fd_bounded_workers(workers: int) -> int:
    """How many pool workers the file descriptor limit allows, after raising the soft limit towards
    the hard one if the pool could need more.

    Connections are closed once a host's facts are in, so the need depends on the pool, not on the
    fleet: a thousand hosts cost what 32 cost.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = workers * FDS_PER_WORKER + FDS_SPARE
    wanted = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return workers
    return max(1, min(workers, (soft - FDS_SPARE) // FDS_PER_WORKER))


class _Job:
    def __init__(self) -> None:
        self.began = threading.Event()
        self.deadline = 0.0
        # Set when the probe is submitted, None again once its facts are let go of (Prober.release):
        # a host is never probed twice in a run.
        self.future: Future[HostFacts] | None = None


@dataclass
class Prober:
    """Probes hosts in a bounded pool of threads; `facts(target)` waits for one host within its budget.

    A host's budget starts when its probe does (time queued behind other hosts is not its own), and
    the worker itself stops at the deadline: the connection is closed, an ssh client killed.
    """

    connect_timeout: float = 10.0
    host_budget: float = 120.0
    workers: int = 32
    # Told of each host's facts in the probe's own thread, as they are gathered (the run's evidence
    # makes the host's snapshot there, off the thread that judges).
    on_gathered: Callable[[Target, HostFacts], None] | None = None
    # How many hosts may be probed or held at once beyond those let go of (release): a thousand
    # hosts' facts need not all wait in memory for their controls. 0: no bound.
    ahead: int = 0
    _jobs: dict[str, _Job] = field(default_factory=dict)
    _queue: deque[Target] = field(default_factory=deque)
    _queued: set[str] = field(default_factory=set)
    _held: int = 0
    _pool: ThreadPoolExecutor | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, targets: Iterable[Target]) -> None:
        """Queue the hosts, in order: at most `ahead` are probed or held beyond those let go of."""
        with self._lock:
            for target in targets:
                if target.name not in self._jobs and target.name not in self._queued:
                    self._queued.add(target.name)
                    self._queue.append(target)
            self._fill()

    def _fill(self) -> None:
        """Start queued probes while the window has room (called under the lock)."""
        while self._queue and (self.ahead <= 0 or self._held < self.ahead):
            target = self._queue.popleft()
            if target.name in self._queued:  # not let go of (release) while it waited
                self._queued.discard(target.name)
                if target.name not in self._jobs:
                    self._submit(target)

    def _submit(self, target: Target) -> _Job:
        if self._pool is None:
            workers = fd_bounded_workers(self.workers)
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="certaudit-probe")
        job = _Job()
        self._jobs[target.name] = job
        self._held += 1
        job.future = self._pool.submit(self._probe, target, job)
        return job

    def release(self, name: str) -> None:
        """Let go of a host's facts (its last control is judged): the window moves on by one host.
        Asking for them again is an error, never a second probe whose answer could differ."""
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                # Still queued (its controls all ended before asking, say none applied): never probed.
                self._queued.discard(name)
                self._jobs[name] = _Job()
                return
            if job.future is None:
                return
            job.future = None
            self._held -= 1
            self._fill()

    def _probe(self, target: Target, job: _Job) -> HostFacts:
        job.deadline = time.monotonic() + self.host_budget
        job.began.set()
        facts = gather(target, self.connect_timeout, job.deadline, self.host_budget)
        if self.on_gathered is not None:
            self.on_gathered(target, facts)
        return facts

    def facts(self, target: Target) -> HostFacts:
        with self._lock:
            # Asked for: probed now, whatever the window (the queue only orders what is probed ahead).
            job = self._jobs.get(target.name) or self._submit(target)
            future = job.future
        if future is None:
            raise ProbeError(
                f"host {target.name}: its facts were let go of after its last control and are not probed "
                "twice in one run (an internal error of certaudit's: please report it)"
            )
        while not job.began.wait(START_POLL_S):
            if future.done():  # cancelled before it began
                break
        try:
            return future.result(timeout=max(0.0, job.deadline - time.monotonic()) + GRACE_S)
        except (FutureTimeout, CancelledError):
            raise _over_budget(target, self.host_budget) from None

    def shutdown(self) -> None:
        with self._lock:
            self._queue.clear()
            self._queued.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
