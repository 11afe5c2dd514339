"""How a secret would show if it leaked into a file the run writes: raw, hex, inside base64 at any
alignment, and the lowercased lines ssh prints when it quotes a file (`ssh -F <key file>`).

The same test as the hardening audit's (tests/integration/test_hardening_on_fleet.py), for any
bytes: the unit tests and the secrets fleet test use it alike.
"""

from __future__ import annotations

import base64
import binascii


def encoded_forms(secret: bytes) -> list[bytes]:
    """The secret raw, hex, and its middle inside base64 of each of the three alignments."""
    forms = [secret, binascii.hexlify(secret)]
    forms += [base64.b64encode(b"\0" * shift + secret)[4:-4] for shift in range(3)]
    return [f for f in forms if len(f) >= 8]


def pem_body_lines(pem: bytes) -> list[bytes]:
    """The base64 lines of a PEM (or OpenSSH) private key file, which ssh quotes lowercased."""
    return [ln.strip() for ln in pem.splitlines() if len(ln.strip()) >= 16 and not ln.startswith(b"-----")]


def leaks(blob: bytes, secret: bytes, pem: bytes | None = None) -> list[str]:
    """Which forms of `secret` (and of the key file `pem`'s lines, any case) `blob` holds."""
    # PEM breaks base64 into lines, and JSON and XML write those breaks escaped: search without them too.
    joined = blob.replace(b"\\n", b"").replace(b"\n", b"").replace(b"&#10;", b"")
    lowered = blob.lower()
    found = [repr(f[:24]) for f in encoded_forms(secret) if f in blob or f in joined]
    for line in pem_body_lines(pem or b""):
        if line.lower() in lowered:
            found.append(f"key line {line[:16]!r}")
    return found
