"""What one in-process login costs the auditing thread when known_hosts lists a fleet.

    .venv/bin/python -m bench.bench_logins --entries 0,100,1000,5000 --logins 30

Every login of a fleet's audit reads the same known_hosts, ssh_config and identity file. For each
size, the bench writes a known_hosts of that many other hosts' keys (ed25519, ECDSA and RSA lines,
as a fleet's file holds them) with the test server's key last, and logs in to the server (the small
paramiko server the unit tests use, on 127.0.0.9) `--logins` times with StrictHostKeyChecking=yes,
as an SRE's inventory would. It prints the CPU the calling thread spends a login (settings, host keys,
identity; the key exchange runs in paramiko's own thread and is not counted): the median and the
spread, and how many times the files were parsed. A figure that grows with the entries means each
login parses the file again. `PYTHONPATH=OTHER_TREE` measures another tree's certaudit with this bench.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from certaudit.gather import transport
from certaudit.inventory import target_for
from tests.unit.sshserver import ssh_server


def public_lines(count: int) -> list[str]:
    """`count` known_hosts lines of other hosts: a few keys of each type, each under many names
    (paramiko parses a line whatever key it holds twice)."""
    keys: list[ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey] = [
        *(ed25519.Ed25519PrivateKey.generate() for _ in range(4)),
        *(ec.generate_private_key(ec.SECP256R1()) for _ in range(4)),
        *(rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)),
    ]
    openssh = [
        k.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() for k in keys
    ]
    return [f"10.{i // 65536}.{i // 256 % 256}.{i % 256} {openssh[i % len(openssh)]}\n" for i in range(count)]


def parses() -> float:
    """How many times the ssh files were parsed so far; NaN in a tree from before they were parsed once
    (PYTHONPATH=that tree runs this bench against it)."""
    try:
        from certaudit.gather import ssh_files
    except ImportError:
        return float("nan")
    return ssh_files.known_hosts_files.parses + ssh_files.identity_files.parses


def measure(entries: int, logins: int, directory: Path) -> dict[str, float]:
    parses_before = parses()
    home = directory / f"server-{entries}"
    home.mkdir()
    with ssh_server(home) as server:
        known_hosts = directory / f"known_hosts-{entries}"
        known_hosts.write_text("".join(public_lines(entries)) + server.known_hosts_line())
        target = target_for("web-1", {
            "ansible_host": "127.0.0.9", "ansible_port": server.port, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(server.client_key),
            "ansible_ssh_common_args": f"-F /dev/null -o UserKnownHostsFile={known_hosts} "
            "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
        })  # fmt: skip
        costs = []
        for _ in range(logins):
            started = time.thread_time()
            client = transport.paramiko_login(target, 10, time.monotonic() + 30)
            costs.append((time.thread_time() - started) * 1000)
            client.close()
    return {"median": statistics.median(costs), "min": min(costs), "max": max(costs), "parses": parses() - parses_before}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_logins", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", default="0,100,1000,5000", help="known_hosts sizes, comma-separated")
    parser.add_argument("--logins", type=int, default=30, help="logins at each size")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.entries.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--entries: not a list of numbers: {args.entries!r}")
    if args.logins < 1 or any(s < 0 or s > 100_000 for s in sizes):
        parser.error("--logins must be at least 1 and each --entries size 0 to 100000")
    print(f"{'known_hosts entries':>20} {'CPU a login, median':>20} {'min':>8} {'max':>8} {'files parsed':>13}")
    with tempfile.TemporaryDirectory(prefix="bench-logins-") as tmp:
        for size in sizes:
            figures = measure(size, args.logins, Path(tmp))
            print(
                f"{size:>20} {figures['median']:>17.2f} ms {figures['min']:>5.2f} ms {figures['max']:>5.2f} ms "
                f"{figures['parses']:>13.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
