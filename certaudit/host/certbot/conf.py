"""A renewal conf (`/etc/letsencrypt/renewal/<name>.conf`) as certbot reads it: with ConfigObj itself.

certbot reads the file with `configobj.ConfigObj(path, encoding='utf-8', default_encoding='utf-8')`
(certbot/_internal/storage.py, `RenewableCert.__init__`), and skips the lineage when that raises.
`parse_renewal_conf` hands ConfigObj the same lines the same way (the file's bytes split as
`open(path, 'rb').readlines()` does, same arguments), so a finding means "certbot will misbehave"
by construction, not by a copy of ConfigObj's grammar.

Versions: certbot requires configobj>=5.0.6 in every release in the field: 1.12 (Debian 11,
configobj 5.0.6), 2.1 (Debian 12, 5.0.8), 4.0 (Debian 13, 5.0.9) and pip installs (5.0.9). The
parser is the same in all of them (5.0.7-5.0.9 only dropped `six`); pyproject pins >=5.0.6,<5.1.

The conf is untrusted: ConfigObj's section-header pattern takes cubic time in a run of `[`
(a 16 KiB line of them takes over 20 s), so sizes are bounded before ConfigObj sees a byte.
Over a bound the conf is not read at all: Undeterminable, never a finding certbot would not make.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from certaudit.errors import PathError, Undeterminable

if TYPE_CHECKING:
    # Imported where a conf is parsed: every audit's start imports this module (through the
    # checks), whose runs mostly parse none (the gate), and configobj is a few ms of that start.
    import configobj

__all__ = ["MAX_CONF_BYTES", "MAX_LINE_CHARS", "MAX_SECTION_LINE_CHARS", "CertbotConfError", "RenewalConf", "parse_renewal_conf"]

# certbot writes about 1 KiB (10 KiB with a webroot_map of 100 names); these leave room for any
# hand edit while keeping ConfigObj's worst case (its patterns are quadratic in a line's blanks
# and cubic in a run of `[`) under a second for the whole file.
MAX_CONF_BYTES = 32 * 1024
MAX_LINE_CHARS = 4096
MAX_SECTION_LINE_CHARS = 128  # a `[...]` line: certbot's are `[renewalparams]` and `[[webroot_map]]`

Value = str | list[str]


class CertbotConfError(PathError, ValueError):
    """certbot could not read a renewal conf: ConfigObj raises, and certbot skips the lineage."""


@dataclass(frozen=True)
class RenewalConf:
    """A parsed `/etc/letsencrypt/renewal/<name>.conf`, values as ConfigObj returns them.

    `sections` is keyed by section path: `renewalparams`, and for ConfigObj subsections (certbot
    writes `[[webroot_map]]` inside `[renewalparams]`) the dotted path `renewalparams.webroot_map`.
    A value is ConfigObj's string, or its list for a comma-separated value (`a, b`, `a,`).
    The properties below are the values certbot reads as one string; parse_renewal_conf has
    already refused a conf where one of them is a list or a section (certbot fails on it).
    """

    top: dict[str, Value]
    sections: dict[str, dict[str, Value]]

    def _one(self, values: dict[str, Value], key: str) -> str | None:
        value = values.get(key)
        return value if isinstance(value, str) else None

    def _param(self, key: str) -> str | None:
        return self._one(self.sections.get("renewalparams", {}), key)

    @property
    def renew_before_expiry(self) -> str | None:
        """Top-level only: certbot reads `configuration.get("renew_before_expiry")` at the top, and
        its own `# renew_before_expiry = 30 days` is a comment, which sets nothing."""
        return self._one(self.top, "renew_before_expiry")

    @property
    def renew_hook(self) -> str | None:
        """Where `--deploy-hook` is saved: `renew_hook` in `[renewalparams]`."""
        return self._param("renew_hook")

    @property
    def deploy_hook(self) -> str | None:
        """A `deploy_hook` in `[renewalparams]`: certbot never reads it (command_hooks.py)."""
        return self._param("deploy_hook")

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
        return self._one(self.top, "version")

    @property
    def cert(self) -> str | None:
        return self._one(self.top, "cert")

    @property
    def privkey(self) -> str | None:
        return self._one(self.top, "privkey")

    @property
    def chain(self) -> str | None:
        return self._one(self.top, "chain")

    @property
    def fullchain(self) -> str | None:
        return self._one(self.top, "fullchain")

    @property
    def archive_dir(self) -> str | None:
        return self._one(self.top, "archive_dir")


# Values certbot uses as one string (a list or a section there makes it raise and skip or fail
# the lineage: `interval.strip()`, os.path on cert paths, `as_bool`, `_restore_str`).
_STRING_TOP = ("renew_before_expiry", "version", "cert", "privkey", "chain", "fullchain", "archive_dir")
_STRING_PARAMS = ("renew_hook", "server", "authenticator", "autorenew")

# ConfigObj's messages, as cause text that never quotes the line (it may hold a secret such as
# eab_hmac_key); `{}` takes the key or section name, read with ConfigObj's own patterns.
_CAUSES = {
    "Invalid line": "neither `key = value`, a [section] nor a comment",
    "Cannot compute the section depth": "malformed section header",
    "Cannot compute nesting level": "section {} is nested inconsistently",
    "Section too nested": "section {} is nested too deep",
    "Duplicate section name": "duplicate section {}",
    "Duplicate keyword name": "duplicate key {}",
    "Parse error in value": "unparseable value of {} (an unterminated quote, or text after a quoted value)",
    "Parse error in multiline value": "unterminated triple-quoted value of {}",
}


def _unquote(name: str) -> str:
    """ConfigObj's `_unquote` of a key or section name."""
    return name[1:-1] if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"" else name


def _name(line: str) -> str:
    """The section (`[name]`) or key a rejected line names, read with ConfigObj's own patterns."""
    import configobj

    section = configobj.ConfigObj._sectionmarker.match(line)
    if section is not None:
        return f"[{_unquote(section.group(3))}]"
    keyword = configobj.ConfigObj._keyword.match(line)
    return repr(_unquote(keyword.group(2))) if keyword is not None else "?"


def _lines(data: bytes) -> list[bytes]:
    """The lines ConfigObj reads from a file: `open(path, 'rb').readlines()`."""
    return io.BytesIO(data).readlines()


def _bound(lines: list[bytes], size: int, path: str) -> None:
    where = path or "renewal conf"
    if size > MAX_CONF_BYTES:
        raise Undeterminable(
            f"{where}: {size} bytes, over certaudit's {MAX_CONF_BYTES}-byte bound for a renewal conf: not parsed"
        )
    for number, line in enumerate(lines, 1):
        line = line.rstrip(b"\r\n")  # ConfigObj's patterns run over the whole line, blanks and all
        limit = MAX_SECTION_LINE_CHARS if line.lstrip().startswith(b"[") else MAX_LINE_CHARS
        if len(line) > limit:
            raise Undeterminable(
                f"{where}: line {number} is over certaudit's {limit}-character bound for a line of that kind: not parsed"
            )


def _cause(error: configobj.ConfigObjError) -> str:
    first = (getattr(error, "errors", None) or [error])[0]
    text = str(first)
    cause = next((c for prefix, c in _CAUSES.items() if text.startswith(prefix)), None)
    if cause is None:
        cause = text.split(" at line ")[0].split("(")[0].strip()
    elif "{}" in cause:
        cause = cause.format(_name(str(getattr(first, "line", ""))))
    number = getattr(first, "line_number", None)
    return f"line {number}: {cause}" if number else cause


def _flatten(section: configobj.Section, prefix: str, sections: dict[str, dict[str, Value]]) -> dict[str, Value]:
    values: dict[str, Value] = {key: section[key] for key in section.scalars}
    for name in section.sections:
        full = f"{prefix}.{name}" if prefix else name
        sections[full] = _flatten(section[name], full, sections)
    return values


def _refuse_non_strings(top: dict[str, Value], sections: dict[str, dict[str, Value]], path: str) -> None:
    params = sections.get("renewalparams", {})
    for where, values, keys, subsections in (
        ("", top, _STRING_TOP, {k for k in sections if "." not in k}),
        ("[renewalparams] ", params, _STRING_PARAMS, {k.split(".", 1)[1] for k in sections if k.startswith("renewalparams.")}),
    ):
        for key in keys:
            value = values.get(key)
            if isinstance(value, list):
                raise CertbotConfError(path, f"{where}{key} is a list of {len(value)} values (a comma), where certbot reads one")
            if key in subsections:
                raise CertbotConfError(path, f"{where}{key} is a section, where certbot reads one value")


def parse_renewal_conf(text: str | bytes, path: str = "") -> RenewalConf:
    """Read a renewal conf with ConfigObj as certbot does, raising CertbotConfError wherever ConfigObj
    raises (certbot then reports "error parsing" and skips the lineage: nothing renews it).

    Pass the file's bytes where they are at hand: certbot's ConfigObj decodes them as UTF-8 and
    fails on bytes that are not; text is encoded back to UTF-8 first.
    Raises Undeterminable (not read) for a conf over MAX_CONF_BYTES or with an over-long line.
    """
    import configobj

    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    lines = _lines(data)
    _bound(lines, len(data), path)
    try:
        parsed = configobj.ConfigObj(lines, encoding="utf-8", default_encoding="utf-8")
    except configobj.ConfigObjError as exc:
        raise CertbotConfError(path, _cause(exc)) from None
    except UnicodeDecodeError as exc:
        raise CertbotConfError(path, f"not UTF-8 (byte {exc.start} of a line): certbot's ConfigObj cannot decode it") from None
    sections: dict[str, dict[str, Value]] = {}
    top = _flatten(parsed, "", sections)
    _refuse_non_strings(top, sections, path)
    return RenewalConf(top=top, sections=sections)
