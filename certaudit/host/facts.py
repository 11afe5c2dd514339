"""One host's facts at one instant: the typed snapshot the probe returns and every check judges.

The snapshot is plain data: the checks need no connection. Facts that could not be determined
carry the reason, and asking for them raises `Undeterminable`, which the plugin reports as an error
outcome (never a pass, never a plain failure).
"""

from __future__ import annotations

import base64
import errno
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar, cast

from certaudit.errors import Undeterminable

T = TypeVar("T")


@dataclass(frozen=True)
class FileFact:
    """lstat and stat of one path on the host, and its bytes when they were read (never a private key's)."""

    path: str
    host: str
    present: bool  # lstat succeeded: something is at this path, maybe a dangling symlink
    lstat_errno: int = 0
    lstat_reason: str = ""
    is_link: bool = False
    link_target: str | None = None
    realpath: str | None = None
    stat_errno: int = 0
    stat_reason: str = ""
    kind: str | None = None  # after following symlinks: file, directory, fifo, ...
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    owner: str | None = None
    group: str | None = None
    size: int | None = None
    mtime: float | None = None
    ctime: float | None = None
    content: bytes | None = field(default=None, repr=False)
    read_errno: int = 0
    read_reason: str = ""
    read_cut: bool = False  # not read (or not whole) because a probe bound was reached: not an observation

    @property
    def refused_content(self) -> str | None:
        """Why the probe kept this file's bytes back as an observation about the file (over the
        per-file limit, a private key inside); None when read, or when not read for another reason
        (permission, the probe's content budget), which `read()` reports as undeterminable."""
        if self.content is None and self.read_errno == 0 and self.read_reason and not self.read_cut:
            return self.read_reason
        return None

    @property
    def mode_text(self) -> str:
        return "unknown" if self.mode is None else f"{self.mode:04o}"

    @property
    def owner_text(self) -> str:
        return f"{self.owner or self.uid}:{self.group or self.gid}"

    def where(self) -> str:
        """The path, and where it really points when it is a symlink."""
        if self.is_link and self.realpath and self.realpath != self.path:
            return f"{self.path} -> {self.realpath}"
        return self.path

    def problem(self) -> str | None:
        """Why this path is not a usable regular file, as observed; None when it is one.

        Permission problems are not observations about the host's compliance: they raise.
        """
        if not self.present:
            if self.lstat_errno in (0, errno.ENOENT, errno.ENOTDIR):
                return f"{self.path} does not exist"
            self._undeterminable("lstat", self.lstat_reason)
        if self.stat_errno == errno.ELOOP:
            return f"{self.path} is a symlink loop"
        if self.stat_errno in (errno.ENOENT, errno.ENOTDIR):
            return f"{self.path} is a dangling symlink to {self.link_target}"
        if self.stat_errno:
            self._undeterminable("stat", self.stat_reason)
        if self.kind != "file":
            return f"{self.where()} is a {self.kind}, not a regular file"
        return None

    def read(self) -> bytes:
        """The file's bytes; raises Undeterminable when they could not be read (e.g. permission denied)."""
        __tracebackhide__ = True
        if self.content is not None:
            return self.content
        self._undeterminable("read", self.read_reason or "content was not gathered")

    def text(self) -> str:
        return self.read().decode("utf-8", "replace")

    def _undeterminable(self, what: str, reason: str) -> NoReturn:
        __tracebackhide__ = True
        raise Undeterminable(f"host {self.host}: cannot {what} {self.path}: {reason}")

    def as_evidence(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "present": self.present,
            "symlink_to": self.realpath if self.is_link else None,
            "kind": self.kind,
            "mode": self.mode_text if self.mode is not None else None,
            "owner": self.owner_text if self.uid is not None else None,
            "error": self.lstat_reason or self.stat_reason or self.read_reason or None,
        }


@dataclass(frozen=True)
class Listing:
    path: str
    names: tuple[str, ...] = ()
    errno_: int = 0
    reason: str = ""
    truncated: bool = False  # the probe kept only the first `limit` of `total` names
    total: int | None = None
    limit: int | None = None

    @property
    def exists(self) -> bool:
        return self.errno_ == 0

    @property
    def missing(self) -> bool:
        """The directory is not there (an observation), as opposed to not readable."""
        return self.errno_ in (errno.ENOENT, errno.ENOTDIR)

    def incomplete(self) -> str | None:
        """Why these names are not the whole directory (unreadable, or cut); None when they are."""
        if not self.exists and not self.missing:
            return f"cannot list {self.path}: {self.reason}"
        if self.truncated:
            return (
                f"{self.path} holds {self.total if self.total is not None else 'more'} names, over the probe's "
                f"listing limit of {self.limit if self.limit is not None else len(self.names)}: the listing was cut "
                f"after {self.names[-1] if self.names else 'no name'}"
            )
        return None


@dataclass(frozen=True)
class PublicKey:
    """The public half of a private key file, derived on the host."""

    path: str
    pem: str | None
    reason: str = ""


@dataclass(frozen=True)
class Endpoint:
    """What the host's TLS endpoint served to the auditing machine."""

    address: str
    port: int
    server_name: str
    leaf_der: bytes | None = field(default=None, repr=False)
    error: str = ""
    determinable: bool = True  # False: a timeout or similar, not an observation about the host
    chain_der: tuple[bytes, ...] = field(default=(), repr=False)  # every certificate served, leaf first
    chain_error: str = ""  # why the served chain could not be read (when the leaf could)
    metrics: MetricsPage | None = None  # GET /metrics over the same connection


@dataclass(frozen=True)
class MetricsPage:
    """What the endpoint answered to GET /metrics (MON-01)."""

    url: str
    status: int | None = None
    body: bytes | None = field(default=None, repr=False)
    error: str = ""
    determinable: bool = True  # False: a timeout, not an observation about the host
    fetched_at: float = 0.0  # the auditing machine's clock when the answer arrived


@dataclass(frozen=True)
class HostFacts:
    host: str
    taken_at: float  # the host's clock, epoch seconds
    audited_at: float  # the auditing machine's clock when the probe returned
    systemd: bool
    files: dict[str, FileFact]
    listings: dict[str, Listing]
    public_keys: dict[str, PublicKey]
    units: dict[str, dict[str, str]]
    units_error: str
    processes: tuple[str, ...] | None
    service_uid: int | None
    service_gid: int | None
    endpoint: Endpoint | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    # What several controls derive alike from these facts (the renewal schedule), computed once:
    # the facts never change. Not an init field, so dataclasses.replace() starts it empty.
    _derived: dict[str, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def derived(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()`, once per key for these facts (an exception is not kept: it is raised again)."""
        if key not in self._derived:
            self._derived[key] = compute()
        return cast(T, self._derived[key])

    def file(self, path: str) -> FileFact:
        try:
            return self.files[path]
        except KeyError:
            raise Undeterminable(f"host {self.host}: {path} was not probed") from None

    def listing(self, path: str) -> Listing:
        """The whole listing of a directory (empty when the directory does not exist).

        Raises Undeterminable when it was not listed, could not be listed, or was cut: a control
        never judges part of a directory as if it were all of it."""
        try:
            listing = self.listings[path]
        except KeyError:
            raise Undeterminable(f"host {self.host}: {path} was not listed") from None
        incomplete = listing.incomplete()
        if incomplete is not None:
            raise Undeterminable(f"host {self.host}: {incomplete}")
        return listing

    def files_in(self, directory: str) -> list[FileFact]:
        """Every file fact of a directory's whole listing; raises Undeterminable as `listing` does,
        and when a listed name was not probed."""
        return [self.file(posixpath.join(directory, n)) for n in self.listing(directory).names]

    def unit(self, name: str) -> dict[str, str]:
        if self.units_error:
            raise Undeterminable(f"host {self.host}: {self.units_error}")
        try:
            return self.units[name]
        except KeyError:  # systemctl show answers for every unit asked, installed or not
            raise Undeterminable(f"host {self.host}: systemctl show gave no state for {name}") from None

    def service_ids(self) -> tuple[int | None, int | None]:
        """The service user's uid and group's gid (None: no such account); raises when accounts were not read."""
        if not isinstance(self.raw.get("accounts"), dict):
            raise Undeterminable(f"host {self.host}: the probe resolved no accounts")
        return self.service_uid, self.service_gid

    def running_processes(self) -> tuple[str, ...]:
        if self.processes is None:
            why = str((self.raw.get("processes_error") or {}).get("reason", "")) or "the probe could not list /proc"
            raise Undeterminable(f"host {self.host}: {why}, so running daemons are unknown")
        return self.processes

    def public_key(self, path: str) -> PublicKey:
        try:
            return self.public_keys[path]
        except KeyError:
            raise Undeterminable(f"host {self.host}: the public key of {path} was not derived") from None

    def _section(self, name: str) -> Any:
        if name not in self.raw:
            raise Undeterminable(f"host {self.host}: the probe gathered no {name}")
        return self.raw[name]

    def service_events(self) -> ServiceEvents | None:
        """The service's starts and reloads since its certificate changed; None without systemd or a certificate."""
        section = self._section("service_events")
        if section is None:
            return None
        try:
            return ServiceEvents(
                unit=str(section["unit"]),
                since=float(section["since"]),
                events=tuple(ServiceEvent(float(e["time"]), str(e["kind"]), str(e["message"])) for e in section["events"]),
                entries_read=int(section["entries_read"]),
                truncated=bool(section["truncated"]),
                error=str((section.get("error") or {}).get("reason", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._malformed("service_events", exc) from None

    def certbot_logs(self) -> CertbotLogs:
        section = self._section("certbot_logs")
        try:
            error = section.get("error") or {}
            return CertbotLogs(
                directory=str(section["dir"]),
                logs=tuple(
                    CertbotLog(
                        path=str(item["path"]),
                        mtime=float(item["mtime"]),
                        lines=tuple(
                            LogLine(float(line["time"]) if line["time"] is not None else None, str(line["text"]))
                            for line in item.get("lines", ())
                        ),
                        truncated=int(item.get("read_from", 0)) > 0,
                        error=str((item.get("error") or {}).get("reason", "")),
                    )
                    for item in section["logs"]
                ),
                errno_=int(error.get("errno", 0)),
                error=str(error.get("reason", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._malformed("certbot_logs", exc) from None

    def prometheus(self) -> PrometheusFacts | None:
        """A Prometheus server's config, loaded rule files and promtool's run; None where not gathered."""
        section = self._section("prometheus")
        if section is None:
            return None
        try:
            tool = section.get("promtool")
            promtool = None
            if tool is not None:
                promtool = Promtool(
                    path=str(tool["path"]),
                    version=str(tool.get("version", "")),
                    points=tuple((int(p["days"]), tuple(str(a) for a in p["expect"])) for p in tool.get("points", ())),
                    rc=int(tool["rc"]) if tool.get("rc") is not None else None,
                    output=str(tool.get("output", "")),
                    error=str((tool.get("error") or {}).get("reason", "")),
                    lifetime_points=tuple(
                        (int(p["lifetime"]), float(p["days"]), tuple(str(a) for a in p["expect"]))
                        for p in tool.get("lifetime_points", ())
                    ),
                )
            block = section.get("rule_files_block")
            return PrometheusFacts(
                config=str(section["config"]),
                rule_files_block=str(block) if block is not None else None,
                read_error=str((section.get("read_error") or {}).get("reason", "")),
                rule_patterns=tuple(str(p) for p in section["rule_patterns"]),
                rule_files=tuple(str(p) for p in section["rule_files"]),
                promtool=promtool,
                rule_files_truncated=bool(section.get("rule_files_truncated", False)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._malformed("prometheus", exc) from None

    def _malformed(self, section: str, exc: Exception) -> Undeterminable:
        return Undeterminable(f"host {self.host}: the probe's {section} answer is malformed ({type(exc).__name__}: {exc})")


@dataclass(frozen=True)
class ServiceEvent:
    time: float  # the host's clock, epoch seconds (the journal's microseconds kept)
    kind: str  # a systemd job that finished (start, restart, reload, ...) or "service-reloaded"
    message: str


@dataclass(frozen=True)
class ServiceEvents:
    """From the service's journal: its starts and reloads from `since` (the certificate's ctime) on."""

    unit: str
    since: float
    events: tuple[ServiceEvent, ...]
    entries_read: int
    truncated: bool  # the read stopped at its bound: a later event may be missing
    error: str


@dataclass(frozen=True)
class LogLine:
    time: float | None  # the host's local log time converted to epoch seconds on the host
    text: str


@dataclass(frozen=True)
class CertbotLog:
    """The lines of one certbot log that tell its runs apart (run start, what was done, outcome)."""

    path: str
    mtime: float
    lines: tuple[LogLine, ...]
    truncated: bool  # only the file's tail was read
    error: str


@dataclass(frozen=True)
class CertbotLogs:
    directory: str
    logs: tuple[CertbotLog, ...]  # newest first
    errno_: int
    error: str


@dataclass(frozen=True)
class Promtool:
    path: str
    version: str
    points: tuple[tuple[int, tuple[str, ...]], ...]  # (days, alerts expected to fire)
    rc: int | None
    output: str
    error: str
    # (lifetime in days, days left, alerts expected): the points of shorter certificates
    lifetime_points: tuple[tuple[int, float, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class PrometheusFacts:
    config: str
    rule_files_block: str | None  # the config's `rule_files:` lines only (the rest can hold credentials)
    read_error: str
    rule_patterns: tuple[str, ...]  # rule_files as the probe read them
    rule_files: tuple[str, ...]  # what they matched on the host
    promtool: Promtool | None  # None: promtool is not installed
    rule_files_truncated: bool = False  # they matched more files than the probe reads


def _file_fact(host: str, raw: dict[str, Any], users: dict[str, str | None], groups: dict[str, str | None]) -> FileFact:
    lstat_error = raw.get("lstat_error") or {}
    stat_error = raw.get("stat_error") or {}
    read_error = raw.get("read_error") or {}
    content = raw.get("content_b64")
    uid, gid = raw.get("uid"), raw.get("gid")
    return FileFact(
        path=raw["path"],
        host=host,
        present="lstat_error" not in raw,
        lstat_errno=int(lstat_error.get("errno", 0)),
        lstat_reason=str(lstat_error.get("reason", "")),
        is_link=bool(raw.get("link", False)),
        link_target=raw.get("link_target"),
        realpath=raw.get("realpath"),
        stat_errno=int(stat_error.get("errno", 0)),
        stat_reason=str(stat_error.get("reason", "")),
        kind=raw.get("kind"),
        mode=raw.get("mode"),
        uid=uid,
        gid=gid,
        owner=users.get(str(uid)) if uid is not None else None,
        group=groups.get(str(gid)) if gid is not None else None,
        size=raw.get("size"),
        mtime=raw.get("mtime"),
        ctime=raw.get("ctime"),
        content=base64.b64decode(content) if content is not None else None,
        read_errno=int(read_error.get("errno", 0)),
        read_reason=str(read_error.get("reason", "")),
        read_cut=bool(read_error.get("cut", False)),
    )


def facts_from_probe(host: str, raw: dict[str, Any], audited_at: float, endpoint: Endpoint | None) -> HostFacts:
    """Type the probe's JSON document. Raises KeyError/TypeError/ValueError on a malformed document."""
    try:
        return _typed_facts(host, raw, audited_at, endpoint)
    except AttributeError as exc:  # a section of another JSON type than the probe writes (a host runs its python3)
        raise TypeError(f"a section of the wrong type: {exc}") from None


def _typed_facts(host: str, raw: dict[str, Any], audited_at: float, endpoint: Endpoint | None) -> HostFacts:
    accounts = raw.get("accounts") or {}
    users = accounts.get("users") or {}
    groups = accounts.get("groups") or {}
    units = raw.get("units") or {}
    units_error = (units.pop("_error", None) or {}).get("reason", "")
    listings = {}
    for path, item in (raw.get("listings") or {}).items():
        error = item.get("error") or {}
        total, limit = item.get("total"), item.get("limit")
        listings[path] = Listing(
            path,
            tuple(item.get("names", ())),
            int(error.get("errno", 0)),
            str(error.get("reason", "")),
            truncated=bool(item.get("truncated", False)),
            total=int(total) if total is not None else None,
            limit=int(limit) if limit is not None else None,
        )
    service_user = accounts.get("service_user") or {}
    service_group = accounts.get("service_group") or {}
    return HostFacts(
        host=host,
        taken_at=float(raw["time"]),
        audited_at=audited_at,
        systemd=bool(raw["systemd"]),
        files={path: _file_fact(host, item, users, groups) for path, item in raw["files"].items()},
        listings=listings,
        public_keys={
            path: PublicKey(path, item.get("public_pem"), (item.get("error") or {}).get("reason", ""))
            for path, item in (raw.get("public_keys") or {}).items()
        },
        units=units,
        units_error=units_error,
        processes=tuple(raw["processes"]) if raw.get("processes") is not None else None,
        service_uid=service_user.get("uid"),
        service_gid=service_group.get("gid"),
        endpoint=endpoint,
        raw=raw,
    )
