"""What a TLS endpoint serves, fetched from the auditing machine (not from the host itself)."""

from __future__ import annotations

import socket
import ssl

from certaudit.facts import Endpoint


def fetch_leaf(address: str, port: int, server_name: str, timeout: float) -> Endpoint:
    """The leaf certificate the endpoint presents for `server_name` (SNI).

    Verification is off on purpose: this records what is served, so LIVE-01 can compare it with
    the disk. A refused connection or a failed handshake is an observation (the endpoint does not
    serve the certificate); a timeout is not, and is marked undeterminable.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sni = server_name if not _is_ip(server_name) else None
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            raw.settimeout(timeout)
            with context.wrap_socket(raw, server_hostname=sni) as tls:
                der = tls.getpeercert(binary_form=True)
    except ConnectionRefusedError:
        return Endpoint(address, port, server_name, error=f"connection refused: nothing listens on {address}:{port}")
    except TimeoutError:
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
    return Endpoint(address, port, server_name, leaf_der=der)


def _is_ip(value: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in value else socket.AF_INET, value)
    except OSError:
        return False
    return True
