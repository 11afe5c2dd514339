"""A renewal conf (`/etc/letsencrypt/renewal/<name>.conf`) as certbot reads it.

certbot reads it with ConfigObj (certbot/_internal/storage.py); every rule here mirrors ConfigObj's
syntax, so that a finding means "certbot will misbehave", not "this differs from what a person
would write".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from certaudit.errors import PathError

__all__ = ["CertbotConfError", "RenewalConf", "parse_renewal_conf"]


class CertbotConfError(PathError, ValueError):
    """certbot could not read a renewal conf: ConfigObj raises, and certbot skips the lineage."""


# --------------------------------------------------------------------------------------------
# Renewal conf (ConfigObj syntax)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenewalConf:
    """A parsed `/etc/letsencrypt/renewal/<name>.conf`.

    `sections` is keyed by section path: `renewalparams`, and for ConfigObj subsections (certbot
    writes `[[webroot_map]]` inside `[renewalparams]`) the dotted path `renewalparams.webroot_map`.
    Values are ConfigObj's text with surrounding quotes removed; list values (`a, b` or a trailing
    comma) are kept as written.
    """

    top: dict[str, str]
    sections: dict[str, dict[str, str]]

    def _param(self, key: str) -> str | None:
        return self.sections.get("renewalparams", {}).get(key)

    @property
    def renew_before_expiry(self) -> str | None:
        """Top-level only: certbot reads `configuration.get("renew_before_expiry")` at the top, and
        its own `# renew_before_expiry = 30 days` is a comment, which sets nothing."""
        return self.top.get("renew_before_expiry")

    @property
    def renew_hook(self) -> str | None:
        """Where `--deploy-hook` is saved: `renew_hook` in `[renewalparams]`."""
        return self._param("renew_hook")

    @property
    def server(self) -> str | None:
        """The ACME directory. certbot stores it in `[renewalparams]` and `RenewableCert.server`
        reads it only there; a top-level `server` line is ignored by certbot."""
        return self._param("server")

    @property
    def authenticator(self) -> str | None:
        """From `[renewalparams]`; certbot skips a lineage whose renewalparams lack it."""
        return self._param("authenticator")

    @property
    def autorenew(self) -> str | None:
        """`autorenew` in `[renewalparams]` as written; certbot renews nothing automatically when it
        is False (certbot accepts only True/False, case-insensitive)."""
        return self._param("autorenew")

    @property
    def version(self) -> str | None:
        """The certbot version that last wrote the file (top-level)."""
        return self.top.get("version")

    @property
    def cert(self) -> str | None:
        return self.top.get("cert")

    @property
    def privkey(self) -> str | None:
        return self.top.get("privkey")

    @property
    def chain(self) -> str | None:
        return self.top.get("chain")

    @property
    def fullchain(self) -> str | None:
        return self.top.get("fullchain")

    @property
    def archive_dir(self) -> str | None:
        return self.top.get("archive_dir")


_SECTION_RE = re.compile(r"^(\[+)(.*?)(\]+)\s*(?:#.*)?$")
_TRIPLE_QUOTES = ("'''", '"""')


def _unquote_name(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
        return name[1:-1]
    return name


def _after_value_ok(rest: str) -> bool:
    rest = rest.strip()
    return not rest or rest.startswith("#")


def _split_key(line: str) -> tuple[str, str] | None:
    """ConfigObj's keyword rule: a (possibly quoted) key, `=`, then everything else."""
    if line[0] in "'\"":
        end = line.find(line[0], 1)
        if end < 0:
            return None
        key, rest = line[1:end], line[end + 1 :].lstrip()
        if not rest.startswith("="):
            return None
        return key, rest[1:]
    eq = line.find("=")
    if eq <= 0:
        return None
    return line[:eq].strip(), line[eq + 1 :]


def parse_renewal_conf(text: str, path: str = "") -> RenewalConf:
    """Read a renewal conf as ConfigObj would, raising CertbotConfError wherever ConfigObj raises
    (certbot then reports "error parsing" and skips the lineage: nothing renews it)."""
    lines = text.removeprefix("\ufeff").splitlines()
    top: dict[str, str] = {}
    sections: dict[str, dict[str, str]] = {}
    stack: list[str] = []  # section names, outermost first
    current = top
    i = 0
    while i < len(lines):
        number = i + 1
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            match = _SECTION_RE.match(line)
            if match is None or len(match.group(1)) != len(match.group(3)):
                raise CertbotConfError(path, f"line {number}: malformed section header")
            depth = len(match.group(1))
            name = _unquote_name(match.group(2))
            if not name or "[" in name or "]" in name:
                raise CertbotConfError(path, f"line {number}: malformed section header")
            if depth > len(stack) + 1:
                raise CertbotConfError(path, f"line {number}: section [{name}] is nested too deep")
            parent = ".".join(stack[: depth - 1])
            parent_values = sections[parent] if parent else top
            stack = [*stack[: depth - 1], name]
            full = ".".join(stack)
            if full in sections or name in parent_values:
                raise CertbotConfError(path, f"line {number}: duplicate section [{name}]")
            sections[full] = {}
            current = sections[full]
            continue
        split = _split_key(line)
        if split is None or not split[0]:
            raise CertbotConfError(path, f"line {number}: neither `key = value`, a [section] nor a comment")
        key, raw = split[0], split[1].strip()
        value: str
        if raw[:3] in _TRIPLE_QUOTES:
            quote = raw[:3]
            end = raw.find(quote, 3)
            if end >= 0:
                value, rest = raw[3:end], raw[end + 3 :]
            else:
                parts = [raw[3:]]
                while i < len(lines) and quote not in lines[i]:
                    parts.append(lines[i])
                    i += 1
                if i == len(lines):
                    raise CertbotConfError(path, f"line {number}: unterminated {quote} value for {key!r}")
                end = lines[i].find(quote)
                parts.append(lines[i][:end])
                value, rest = "\n".join(parts), lines[i][end + 3 :]
                i += 1
            if not _after_value_ok(rest):
                raise CertbotConfError(path, f"line {number}: text after the quoted value of {key!r}")
        elif raw[:1] in ("'", '"'):
            end = raw.find(raw[0], 1)
            if end < 0:
                raise CertbotConfError(path, f"line {number}: unterminated quote in the value of {key!r}")
            rest = raw[end + 1 :]
            if _after_value_ok(rest):
                value = raw[1:end]
            elif rest.strip().startswith(","):
                value = raw.split(" #", 1)[0].strip()  # a ConfigObj list: keep it as written
            else:
                raise CertbotConfError(path, f"line {number}: text after the quoted value of {key!r}")
        else:
            value = raw.split("#", 1)[0].strip()  # ConfigObj: an unquoted `#` starts a comment
        if key in current or (current is top and key in sections) or (current is not top and ".".join([*stack, key]) in sections):
            raise CertbotConfError(path, f"line {number}: duplicate key {key!r}")
        current[key] = value
    return RenewalConf(top=top, sections=sections)
