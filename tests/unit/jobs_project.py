"""A one-host audit project on this machine for the jobs' tests (gate, Prometheus, quarterly).

The host is this machine over a local connection, with a TLS directory of the test's own (a
certificate expiring in a chosen number of days and its key, 0600, owned by the user running the
tests) and a TLS endpoint on loopback serving that certificate, so every gate control can pass here.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.fleet import pki

REPO = Path(__file__).resolve().parents[2]
CONFTEST = 'pytest_plugins = ["certaudit.plugin"]\n'


@contextlib.contextmanager
def tls_endpoint(tls_dir: Path) -> Iterator[int]:
    """Serve tls_dir's cert.pem on 127.0.0.1 (any free port, yielded) until the block ends."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def write_tls_dir(tls_dir: Path, days_left: float) -> None:
    issued = pki.issue("stemedb.example.com", days_left=days_left)
    tls_dir.mkdir(parents=True, exist_ok=True)
    (tls_dir / "cert.pem").write_bytes(issued.fullchain_pem)
    (tls_dir / "cert.pem").chmod(0o644)
    (tls_dir / "key.pem").write_bytes(issued.key_pem)
    (tls_dir / "key.pem").chmod(0o600)


def make_project(root: Path, tls_dir: Path, port: int, extra_vars: dict[str, object] | None = None) -> None:
    """checks/ (a copy), conftest.py and inv.yml: localhost, its policy pointed at tls_dir and port."""
    shutil.copytree(REPO / "checks", root / "checks", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (root / "conftest.py").write_text(CONFTEST)
    variables = {
        "ansible_connection": "local",
        "ansible_host": "127.0.0.1",
        "certaudit_tls_dir": str(tls_dir),
        "certaudit_endpoint_port": port,
        # The key belongs to whoever runs the tests: that account plays the service.
        "certaudit_service_user": pwd.getpwuid(os.getuid()).pw_name,
        "certaudit_service_group": grp.getgrgid(os.getgid()).gr_name,
        **(extra_vars or {}),
    }
    (root / "inv.yml").write_text(json.dumps({"all": {"hosts": {"localhost": variables}}}))
