#!/usr/bin/python3
"""Stand-in for the StemeDB API on a test host: an HTTPS server on port 18180.

It serves the certificate in /etc/stemedb/tls, answers /health and /metrics
(stemedb_tls_cert_expiry_seconds computed from the certificate it serves) and
reloads its certificate on SIGHUP (`systemctl reload stemedb-api`), which is
what the runbook's deploy hook relies on. Standard library only: it runs on the
test host's own python3.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import ssl
import sys
import threading
import time
from typing import Any

TLS_DIR = os.environ.get("STEMEDB_TLS_DIR", "/etc/stemedb/tls")
BIND = os.environ.get("STEMEDB_BIND", "127.0.0.1")
PORT = int(os.environ.get("STEMEDB_PORT", "18180"))
DOMAIN = os.environ.get("STEMEDB_DOMAIN", "stemedb.example.com")
# Scenario knobs (a systemd drop-in sets them): OpenSSL's security level, so a test host can serve
# an RSA-1024 or SHA-1 certificate as old stacks do; and how /metrics misbehaves (none: no expiry
# metric; days: the value in days, the unit the runbook's reference list mistakes it for), and
# under which domain label it exports it.
SECLEVEL = os.environ.get("STEMEDB_SECLEVEL", "")
METRICS = os.environ.get("STEMEDB_METRICS", "seconds")
METRICS_DOMAIN = os.environ.get("STEMEDB_METRICS_DOMAIN", DOMAIN)


class CertificateStore:
    """The TLS context in use, swapped whole on reload so a handshake never sees half a change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.context, self.not_before, self.not_after = self._load()

    @staticmethod
    def _load() -> tuple[ssl.SSLContext, float, float]:
        cert = os.path.join(TLS_DIR, "cert.pem")
        key = os.path.join(TLS_DIR, "key.pem")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if SECLEVEL:
            context.set_ciphers(f"DEFAULT:@SECLEVEL={int(SECLEVEL)}")
        context.load_cert_chain(cert, key)
        decoded: dict[str, Any] = ssl._ssl._test_decode_cert(cert)  # type: ignore[attr-defined]
        not_after = ssl.cert_time_to_seconds(decoded["notAfter"])
        return context, float(ssl.cert_time_to_seconds(decoded["notBefore"])), float(not_after)

    def reload(self) -> None:
        try:
            context, not_before, not_after = self._load()
        except (OSError, ssl.SSLError, ValueError) as exc:
            print(f"certificate reload failed, keeping the old one: {exc}", flush=True)
            return
        with self._lock:
            self.context, self.not_before, self.not_after = context, not_before, not_after
        print(f"certificate reloaded: {TLS_DIR}/cert.pem, notAfter {time.ctime(not_after)}", flush=True)


STORE = CertificateStore()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            body = b"ok\n"
        elif self.path == "/metrics":
            seconds = int(STORE.not_after - time.time())
            value = seconds // 86400 if METRICS == "days" else seconds
            text = "# HELP stemedb_requests_total Requests served.\n# TYPE stemedb_requests_total counter\n"
            text += "stemedb_requests_total 1\n"
            if METRICS != "none":
                text += (
                    "# HELP stemedb_tls_cert_expiry_seconds Seconds until the served certificate expires.\n"
                    "# TYPE stemedb_tls_cert_expiry_seconds gauge\n"
                    f'stemedb_tls_cert_expiry_seconds{{domain="{METRICS_DOMAIN}"}} {value}\n'
                    # The validity bounds: alert rules relative to the lifetime read them ([lifetimes]).
                    "# TYPE stemedb_tls_cert_not_before_timestamp_seconds gauge\n"
                    f'stemedb_tls_cert_not_before_timestamp_seconds{{domain="{METRICS_DOMAIN}"}} {int(STORE.not_before)}\n'
                    "# TYPE stemedb_tls_cert_not_after_timestamp_seconds gauge\n"
                    f'stemedb_tls_cert_not_after_timestamp_seconds{{domain="{METRICS_DOMAIN}"}} {int(STORE.not_after)}\n'
                )
            body = text.encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(10)
        # The context is read per connection, so a reload applies to the next handshake.
        return STORE.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that drops the handshake is not the server's problem


def main() -> int:
    signal.signal(signal.SIGHUP, lambda *_: STORE.reload())
    server = Server((BIND, PORT), Handler)
    print(f"serving {TLS_DIR}/cert.pem for {DOMAIN} on {BIND}:{PORT}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
