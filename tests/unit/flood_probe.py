"""Probe one host that floods its answer, in a process of its own, and print what it cost (JSON).

`python -m tests.unit.flood_probe local|ssh|paramiko BYTES|endless DIR`: the error certaudit gave and the
process's peak resident memory (resource.getrusage), before and after the probe.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from certaudit.errors import ProbeError
from certaudit.gather import probe
from certaudit.inventory import target_for
from tests.unit.sshserver import ssh_server


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    path, size, directory = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    before = peak_mb()
    message = ""
    if path == "local":
        probe.probe_argv = lambda target: ["head", "-c", size, "/dev/zero"]
        try:
            probe.probe_host(target_for("localhost", {"ansible_connection": "local"}), 5, time.monotonic() + 30, 30)
        except ProbeError as exc:
            message = str(exc)
    else:
        with ssh_server(directory, endless=True) as server:
            target = target_for("flood", {
                "ansible_host": "127.0.0.9", "ansible_port": server.port, "ansible_user": "root",
                "ansible_connection": path, "ansible_ssh_private_key_file": str(server.client_key),
                "ansible_ssh_common_args": "-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                "-o LogLevel=ERROR -o IdentitiesOnly=yes",
            })  # fmt: skip
            try:
                probe.probe_host(target, 5, time.monotonic() + 30, 30)
            except ProbeError as exc:
                message = str(exc)
    print(json.dumps({"message": message, "before_mb": before, "peak_mb": peak_mb()}))


if __name__ == "__main__":
    main()
