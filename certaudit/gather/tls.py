"""What a TLS endpoint serves, fetched from the auditing machine (not from the host itself)."""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
from typing import cast

from certaudit.gather.transport import DeadlineExceeded, remaining
from certaudit.host.facts import Endpoint, MetricsPage

METRICS_PATH = "/metrics"
METRICS_LIMIT = 1024 * 1024


def fetch_leaf(address: str, port: int, server_name: str, timeout: float) -> Endpoint:
    """The leaf certificate the endpoint presents for `server_name` (SNI).

    Verification is off on purpose: this records what is served, so LIVE-01 can compare it with
    the disk. A refused connection or a failed handshake is an observation (the endpoint does not
    serve the certificate); a timeout is not, and is marked undeterminable. `timeout` bounds the
    whole exchange, not each read: an endpoint that trickles its answer a byte at a time is cut off
    there, and the probe's worker is free again.
    """
    deadline = time.monotonic() + timeout
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sni = server_name if not _is_ip(server_name) else None
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            raw.settimeout(remaining(deadline))  # CPython bounds the whole handshake by it
            with context.wrap_socket(raw, server_hostname=sni) as tls:
                der = tls.getpeercert(binary_form=True)
                # Over the same connection: the whole chain served (CRT-03) and the metrics page (MON-01).
                chain, chain_error = _served_chain(tls)
                metrics = _get_metrics(tls, server_name, port, timeout, deadline) if der else None
    except ConnectionRefusedError:
        return Endpoint(address, port, server_name, error=f"connection refused: nothing listens on {address}:{port}")
    except (TimeoutError, DeadlineExceeded):
        return Endpoint(
            address, port, server_name, error=f"no TLS handshake from {address}:{port} within {timeout:g} s", determinable=False
        )
    except ssl.SSLError as exc:
        return Endpoint(address, port, server_name, error=f"TLS handshake with {address}:{port} failed: {exc.reason or exc}")
    except OSError as exc:
        return Endpoint(
            address, port, server_name, error=f"cannot connect to {address}:{port}: {exc.strerror or exc}", determinable=False
        )
    if not der:
        return Endpoint(address, port, server_name, error=f"{address}:{port} presented no certificate")
    return Endpoint(address, port, server_name, leaf_der=der, chain_der=chain, chain_error=chain_error, metrics=metrics)


def _served_chain(tls: ssl.SSLSocket) -> tuple[tuple[bytes, ...], str]:
    """Every certificate the peer sent, leaf first, unverified (verification is CRT-03's own)."""
    public = getattr(tls, "get_unverified_chain", None)  # Python 3.13 and later
    if callable(public):
        return tuple(bytes(c) for c in public() or ()), ""
    # CPython 3.10 to 3.12 have the same call, undocumented, on the connection object.
    private = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if not callable(private):
        return (), "this Python's ssl module cannot return the chain a server sends"
    encoding = getattr(getattr(ssl, "_ssl", None), "ENCODING_DER", 2)
    return tuple(bytes(c.public_bytes(encoding)) for c in private() or ()), ""


def _get_metrics(tls: ssl.SSLSocket, server_name: str, port: int, timeout: float, deadline: float) -> MetricsPage:
    """GET /metrics on the open connection, bounded in size and by the deadline; a timeout is not an observation."""
    url = f"https://{server_name}:{port}{METRICS_PATH}"
    request = (
        f"GET {METRICS_PATH} HTTP/1.1\r\nHost: {server_name}:{port}\r\nAccept: text/plain\r\n"
        "User-Agent: certaudit\r\nConnection: close\r\n\r\n"
    )
    try:
        tls.settimeout(remaining(deadline))
        tls.sendall(request.encode("ascii"))
        # http.client reads the socket through its makefile(): this one checks the deadline at each read.
        response = http.client.HTTPResponse(cast(socket.socket, _DeadlineSocket(tls, deadline)))
        response.begin()
        body = response.read(METRICS_LIMIT + 1)
    except (TimeoutError, DeadlineExceeded):
        return MetricsPage(url, error=f"no complete answer to GET {METRICS_PATH} within {timeout:g} s", determinable=False)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return MetricsPage(url, error=f"GET {METRICS_PATH} failed: {type(exc).__name__}: {exc}")
    if len(body) > METRICS_LIMIT:
        return MetricsPage(url, status=response.status, error=f"the answer to GET {METRICS_PATH} is over {METRICS_LIMIT} bytes")
    return MetricsPage(url, status=response.status, body=body, fetched_at=time.time())


class _DeadlineReader(io.RawIOBase):
    """Reads a socket, each read bounded by what is left of one deadline for the whole answer."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self._sock.settimeout(remaining(self._deadline))
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """What http.client.HTTPResponse needs of a socket: makefile("rb"), here bounded by a deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _is_ip(value: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in value else socket.AF_INET, value)
    except OSError:
        return False
    return True
