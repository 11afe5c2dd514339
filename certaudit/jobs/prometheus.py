"""The run's results as Prometheus text format, for node_exporter's textfile collector.

`--prometheus-textfile /var/lib/node_exporter/textfile/certaudit.prom` writes, at the end of a run:

- `certaudit_control_status{host,control}`: 1 pass, 0 fail, -1 error (could not be determined),
  2 waived, 3 not applicable; so `certaudit_control_status <= 0` is every open problem;
- `certaudit_cert_expiry_seconds{host,domain}`: seconds from the moment the host was audited until
  the certificate the service reads (`certaudit_tls_dir/cert.pem`) expires, negative once expired,
  like the runbook's `stemedb_tls_cert_expiry_seconds`;
- `certaudit_last_run_timestamp_seconds`: when the run finished (Unix time), so an alert can tell
  a stale file (`time() - certaudit_last_run_timestamp_seconds > 2 * 86400`) from a healthy fleet.

The collector reads the directory at any moment, so the file is written whole or not at all: into
a hidden temporary sibling (the collector only reads `*.prom`), flushed, made readable by the
collector's user (0644), then renamed over the old one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from certaudit.errors import PathError
from certaudit.host.facts import HostFacts
from certaudit.host.x509 import CertificateError, load_pem_certificates, seconds_left
from certaudit.policy import Policy
from certaudit.record import Record

STATUS = {"pass": 1, "fail": 0, "error": -1, "waived": 2, "not applicable": 3}
STATUS_HELP = "Outcome of a certaudit control on a host in the last run: 1 pass, 0 fail, -1 error, 2 waived, 3 not applicable."
EXPIRY_HELP = "Seconds from the audit of the host until the certificate its service reads expires (negative once expired)."
LAST_RUN_HELP = "When the last certaudit run finished, in Unix time."


def _label(value: str) -> str:
    """A label value escaped as the text format requires (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def expiry_seconds(facts: HostFacts, policy: Policy) -> float | None:
    """Seconds left on the service's certificate as of the host's audit; None when it cannot be read."""
    cert_file = facts.files.get(policy.tls_cert)
    if cert_file is None or cert_file.content is None:
        return None
    try:
        leaf = load_pem_certificates(cert_file.content, cert_file.path)[0]
    except CertificateError:
        return None
    return seconds_left(leaf, dt.datetime.fromtimestamp(facts.audited_at, dt.UTC))


def render(
    records: Iterable[Record],
    expiries: Mapping[str, float | None],
    policies: Mapping[str, Policy],
    finished: dt.datetime,
) -> str:
    """The text-format document: control status, certificate expiry (`expiries`: each reached
    host's expiry_seconds), and the run's time."""
    lines = [
        f"# HELP certaudit_control_status {STATUS_HELP}",
        "# TYPE certaudit_control_status gauge",
    ]
    seen: set[tuple[str, str]] = set()
    for record in records:
        key = (record.host, record.control)
        if key in seen:  # one sample per series: a duplicate would make the whole file unreadable
            continue
        seen.add(key)
        lines.append(
            f'certaudit_control_status{{host="{_label(record.host)}",control="{_label(record.control)}"}} '
            f"{STATUS[record.outcome]}"
        )
    lines += [f"# HELP certaudit_cert_expiry_seconds {EXPIRY_HELP}", "# TYPE certaudit_cert_expiry_seconds gauge"]
    for host in sorted(expiries):
        policy, left = policies.get(host), expiries[host]
        if policy is not None and left is not None:
            labels = f'host="{_label(host)}",domain="{_label(policy.domain)}"'
            lines.append(f"certaudit_cert_expiry_seconds{{{labels}}} {_number(round(left, 3))}")
    lines += [
        f"# HELP certaudit_last_run_timestamp_seconds {LAST_RUN_HELP}",
        "# TYPE certaudit_last_run_timestamp_seconds gauge",
        f"certaudit_last_run_timestamp_seconds {_number(round(finished.timestamp(), 3))}",
    ]
    return "\n".join(lines) + "\n"


def check_destination(path: Path) -> None:
    """Refuse a path the run could not write at its end, before any host is touched."""
    if path.name.startswith(".") or not path.name.endswith(".prom"):
        raise PathError(str(path), "node_exporter's textfile collector reads only files named *.prom (not hidden)")
    if not path.parent.is_dir():
        raise PathError(str(path.parent), "not a directory: create it first (node_exporter's --collector.textfile.directory)")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise PathError(str(path.parent), "not writable by this user")


def write_textfile(path: Path, text: str) -> None:
    """Write atomically: a hidden temporary in the same directory, fsync, chmod 0644, rename."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise PathError(str(path.parent), f"cannot create a file there: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the collector runs as its own user
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise PathError(str(path), f"cannot be written: {exc.strerror or exc}") from None
