"""Which certbot a host runs and how it was installed, read from package metadata (certbot is never
run: a run may renew, and it is slow).

The certbot that matters is the one the renewal scheduler runs: the `ExecStart` of the service its
timer starts (Debian's `certbot.service`, RHEL/EPEL's `certbot-renew.service`, the snap's
`snap.certbot.renew.service`, which runs `/usr/bin/snap run ... certbot.renew`), or the command of the
cron entry (the EFF's `... && sudo certbot renew -q`). A bare `certbot` is looked up as sudo's
`secure_path` and Debian's /etc/crontab PATH order it: /usr/local/bin, /usr/bin, /bin, /snap/bin.
Where that executable really lives says how certbot was installed:

- under /snap (or /usr/bin/snap itself): the snap; its version is `version:` in
  /snap/certbot/current/meta/snap.yaml;
- `<root>/bin/certbot` with `<root>/pyvenv.cfg`: pip into a virtualenv (the EFF's /opt/certbot); its
  version is `Version:` in `<root>/lib/python3*/site-packages/certbot-*.dist-info/METADATA`;
- /usr/bin or /bin: the distribution's package: Debian's python3-certbot keeps its metadata in
  /usr/lib/python3/dist-packages (egg-info in 1.12, 2.1 and 4.0), an RPM's in
  /usr/lib/python3.X/site-packages;
- /usr/local/bin: pip into the system's python (/usr/local/lib/python3*/...-packages).

Exactly one certbot metadata where the executable imports from gives the version; none, several,
or one not read is Undeterminable: the rules of a certbot release are never applied to a guess.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from certaudit.errors import Undeterminable
from certaudit.host.certbot.release import CertbotVersion, parse_version, shown
from certaudit.host.facts import FileFact, HostFacts

__all__ = ["SNAP_META", "Installation", "installation_of", "resolve_executable"]

SNAP_META = "/snap/certbot/current/meta/snap.yaml"
PATH_ORDER = ("/usr/local/bin", "/usr/bin", "/bin", "/snap/bin")
DPKG_LISTS = ("/var/lib/dpkg/info/certbot.list", "/var/lib/dpkg/info/python3-certbot.list")
_VERSION_LINE = re.compile(r"(?m)^Version:[ \t]*(\S+)[ \t]*$")
_SNAP_VERSION = re.compile(r"""(?m)^version:[ \t]*['"]?([^'"\s]+)['"]?[ \t]*$""")


@dataclass(frozen=True)
class Installation:
    """One certbot: how it was installed, its release, and where that was read."""

    how: str  # "debian package", "rpm package", "pip in /opt/certbot", "pip (system python)", "snap"
    version: CertbotVersion
    version_from: str
    executable: str  # as the scheduler names it, and where it really is

    @property
    def version_text(self) -> str:
        return shown(self.version)

    def as_evidence(self) -> dict[str, str]:
        return {
            "version": self.version_text,
            "installed_as": self.how,
            "version_from": self.version_from,
            "executable": self.executable,
        }


def resolve_executable(facts: HostFacts, name: str) -> FileFact:
    """The file a command word runs: an absolute path as it is, a bare name by PATH_ORDER."""
    if name.startswith("/"):
        return facts.file(name)
    for directory in PATH_ORDER:
        fact = facts.file(posixpath.join(directory, posixpath.basename(name)))
        if fact.present and fact.problem() is None:
            return fact
    raise Undeterminable(f"host {facts.host}: no {name} in {':'.join(PATH_ORDER)}: which certbot runs is unknown")


def _sites(facts: HostFacts) -> dict[str, Any]:
    section = facts.raw.get("certbot_install")
    if not isinstance(section, dict) or not isinstance(section.get("sites"), dict):
        raise Undeterminable(f"host {facts.host}: the probe gathered no certbot installation facts")
    sites: dict[str, Any] = section["sites"]
    return sites


def _metadata_path(directory: str, name: str) -> str:
    if name.endswith(".dist-info"):
        return posixpath.join(directory, name, "METADATA")
    return posixpath.join(directory, name, "PKG-INFO")


def _metadata_in(facts: HostFacts, pattern: str) -> list[tuple[str, str]]:
    """(site directory, metadata name) of every certbot metadata in the site directories matching pattern."""
    found = []
    for directory, site in sorted(_sites(facts).items()):
        if not fnmatch.fnmatchcase(directory, pattern) or not isinstance(site, dict):
            continue
        error = site.get("error")
        if error:
            reason = error.get("reason", "") if isinstance(error, dict) else str(error)
            if isinstance(error, dict) and error.get("errno") == 2:
                continue  # no such directory: nothing installed there
            raise Undeterminable(f"host {facts.host}: cannot list {directory}: {reason}")
        found += [(directory, str(name)) for name in site.get("names", ())]
    return found


def _version_from_metadata(facts: HostFacts, directory: str, name: str) -> tuple[CertbotVersion, str]:
    path = _metadata_path(directory, name)
    if path not in facts.files and name.endswith(".egg-info"):
        path = posixpath.join(directory, name)  # an egg-info that is a file is the PKG-INFO itself
    fact = facts.file(path)
    problem = fact.problem()
    if problem is not None:
        raise Undeterminable(f"host {facts.host}: {problem}: certbot's version is unknown")
    header = fact.text().split("\n\n", 1)[0]
    match = _VERSION_LINE.search(header)
    version = parse_version(match.group(1)) if match else None
    if version is None:
        raise Undeterminable(f"host {facts.host}: {path} names no certbot version (no `Version:` line)")
    return version, path


def _one_metadata(facts: HostFacts, pattern: str, executable: str) -> tuple[CertbotVersion, str, str]:
    found = _metadata_in(facts, pattern)
    if not found:
        raise Undeterminable(
            f"host {facts.host}: {executable} runs, but no certbot metadata is in {pattern}: its version is unknown"
        )
    if len(found) > 1:
        names = ", ".join(posixpath.join(d, n) for d, n in found)
        raise Undeterminable(f"host {facts.host}: several certbot installations where {executable} imports from: {names}")
    directory, name = found[0]
    version, path = _version_from_metadata(facts, directory, name)
    return version, path, directory


def _snap(facts: HostFacts, executable: str) -> Installation:
    fact = facts.file(SNAP_META)
    problem = fact.problem()
    if problem is not None:
        raise Undeterminable(f"host {facts.host}: {executable} is the snap's, but {problem}: its version is unknown")
    match = _SNAP_VERSION.search(fact.text())
    version = parse_version(match.group(1)) if match else None
    if version is None:
        raise Undeterminable(f"host {facts.host}: {SNAP_META} names no certbot version")
    return Installation("snap", version, SNAP_META, executable)


def _system_how(facts: HostFacts, directory: str) -> str:
    if directory.startswith("/usr/local/"):
        return "pip (system python)"
    if directory == "/usr/lib/python3/dist-packages":
        listed = any(facts.files.get(p) is not None and facts.files[p].kind == "file" for p in DPKG_LISTS)
        return "debian package" if listed else "python3 dist-packages (no dpkg record)"
    return "rpm package"


def installation_of(facts: HostFacts, name: str, argv: tuple[str, ...] = ()) -> Installation:
    """The certbot that the command word `name` (with the rest of its command line) runs."""
    fact = resolve_executable(facts, name)
    problem = fact.problem()
    if problem is not None:
        raise Undeterminable(f"host {facts.host}: {problem}: the scheduled certbot is not there")
    real = fact.realpath or fact.path
    shown_as = fact.where()
    if real == "/usr/bin/snap" or real.startswith("/snap/") or fact.path.startswith("/snap/"):
        if real == "/usr/bin/snap" and fact.path == "/usr/bin/snap" and not any(a.startswith("certbot") for a in argv):
            raise Undeterminable(f"host {facts.host}: {name} {' '.join(argv)} runs no certbot snap command")
        return _snap(facts, shown_as)
    root = posixpath.dirname(posixpath.dirname(real))
    venv = facts.files.get(posixpath.join(root, "pyvenv.cfg"))
    if posixpath.basename(posixpath.dirname(real)) == "bin" and venv is not None and venv.kind == "file":
        version, path, _ = _one_metadata(facts, posixpath.join(root, "lib", "python3*", "site-packages"), shown_as)
        return Installation(f"pip in {root}", version, path, shown_as)
    if real.startswith("/usr/local/"):
        version, path, directory = _one_metadata(facts, "/usr/local/lib/python3*", shown_as)
    else:
        version, path, directory = _one_metadata(facts, "/usr/lib*/python3*", shown_as)
    return Installation(_system_how(facts, directory), version, path, shown_as)
