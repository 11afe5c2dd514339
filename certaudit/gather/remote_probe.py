# This file is sent to the audited host and run there by its own python3 (3.6 or newer, standard
# library only). It gathers, in one run, every fact the controls judge and prints them as one JSON
# document. It only reads: it never writes, never follows a FIFO, never reads a private key's bytes
# out (the key's public half is derived on the host by openssl), and bounds every read.
#
# Limits (a realistic host never reaches them; where one is reached the fact says so, and every
# control that needs it ends in `error` naming the directory or file and what was cut):
# - LISTING_LIMIT names per directory (archive/<domain>/ holds four names per renewal: 50,000
#   names are 12,500 renewals, over 100 years of 3-day renewals of 6-day certificates);
# - READ_LIMIT (1 MB) per file read, HOOK_READ_LIMIT (64 KB) per deploy hook;
# - CONTENT_BUDGET (16 MB) for the bytes of all files read together: a directory of 10,000 files
#   is stat'ed whole, but only what a control reads is read (certificates, the renewal conf, the
#   crontabs cron reads, the deploy hooks certbot runs: regular, executable, no trailing `~`);
# - RULE_FILES_LIMIT Prometheus rule files.
#
# What the probe costs the host is mostly starting things: python3, the modules it imports, the
# commands it runs. So on the common path it imports only modules written in C (re, json,
# subprocess, signal, threading, glob and base64 would cost a bench host about 13 ms of CPU, a
# sixth of the probe's share): commands are started by run_command, JSON goes through json's own C
# accelerator, and what a rare path needs (promtool, glob patterns, a hook line) is imported there.
import binascii
import errno
import grp
import os
import pwd
import select
import stat
import sys
import time

try:
    import _json  # the C half of the json module, without its Python half (which imports re)
except ImportError:  # a Python built without it: the json module, then (see _json_codec)
    _json = None
try:
    import _signal as signals  # the C half of signal, without the enum its Python half imports
except ImportError:
    import signal as signals

PROBE_VERSION = 1
READ_LIMIT = 1024 * 1024
HOOK_READ_LIMIT = 64 * 1024
LISTING_LIMIT = 50000
CONTENT_BUDGET = 16 * 1024 * 1024
TIME_BUDGET_S = 60
CRON_DIRS = ("/etc/cron.d", "/var/spool/cron/crontabs")

KIND_BY_MODE = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "char-device"),
    (stat.S_ISBLK, "block-device"),
)


def kind_of(mode):
    for test, name in KIND_BY_MODE:
        if test(mode):
            return name
    return "unknown"


def error_text(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return "%s (%s)" % (exc.strerror, os.strerror(exc.errno) if exc.errno else "")
    return "%s: %s" % (type(exc).__name__, exc)


def os_error(exc):
    return {"errno": exc.errno or 0, "reason": exc.strerror or str(exc)}


def b64encode(data):
    """base64.b64encode(data) as text, without the base64 module (it imports re)."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64decode(text):
    """base64.b64decode(text): characters outside the alphabet are skipped, as there."""
    return binascii.a2b_base64(text)


JSON_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
JSON_SPACE = " \t\n\r"


class _JsonOptions(object):
    """json.loads' defaults, which json's C scanner reads off the object it is made from."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = JSON_CONSTANTS.__getitem__


def _not_serializable(obj):
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def _c_encoder():
    # json.dumps' defaults: a fresh circular-reference marker dict, no indent, ", " and ": ", ASCII only.
    return _json.make_encoder({}, _not_serializable, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)


def _json_codec():
    """json.dumps and json.loads (their defaults, the same text and values) made of json's C
    accelerator; the json module itself where this Python lacks the accelerator or it differs."""
    try:
        scan = _json.make_scanner(_JsonOptions())
        _c_encoder()
    except (AttributeError, TypeError):
        import json

        return json.dumps, json.loads

    def dumps(obj):
        return "".join(_c_encoder()(obj, 0))

    def loads(text):
        start = len(text) - len(text.lstrip(JSON_SPACE))
        try:
            obj, end = scan(text, start)
        except StopIteration:
            raise ValueError("Expecting value: char %d" % start) from None
        if text[end:].strip(JSON_SPACE):
            raise ValueError("Extra data: char %d" % end)
        return obj

    return dumps, loads


json_dumps, json_loads = _json_codec()


PRIVATE_KEY_END = b"PRIVATE KEY-----"
PEM_LABEL_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
PEM_LABEL_LIMIT = 40


def private_key_block(data):
    """Where the first `-----BEGIN <label>PRIVATE KEY-----` line is, label [A-Z0-9 ]{0,40}, as
    (offset, label) or None: the regex's leftmost match, found without the re module."""
    if PRIVATE_KEY_END not in data:
        return None
    start = data.find(b"-----BEGIN ")
    while start >= 0:
        head = start + len(b"-----BEGIN ")
        window = data[head : head + PEM_LABEL_LIMIT + len("PRIVATE KEY") + 1]
        run = len(window) - len(window.lstrip(PEM_LABEL_BYTES))
        # `PRIVATE KEY` is all label bytes and `-` is none: a match ends its run of label bytes.
        label_end = head + run - len("PRIVATE KEY")
        if head <= label_end <= head + PEM_LABEL_LIMIT and data[label_end : head + run + 5] == PRIVATE_KEY_END:
            return start, data[head:label_end].decode("ascii")
        start = data.find(b"-----BEGIN ", start + 1)
    return None


def private_key_inside(data):
    """Why these bytes must stay on the host, or None: they hold a private key, whatever the file's
    name says (a key pasted into a certificate file, cert.pem linked to the key). PEM is found by
    its marker; DER by its shape: private keys (PKCS#1, PKCS#8, SEC1) are a SEQUENCE whose first
    element is an INTEGER, a certificate is a SEQUENCE of SEQUENCEs."""
    block = private_key_block(data)
    if block:
        line = data.count(b"\n", 0, block[0]) + 1
        return "holds a private key (%sPRIVATE KEY block at line %d): its bytes stay on the host" % (block[1], line)
    if len(data) > 4 and data[0] == 0x30:
        offset = 2 if data[1] < 0x80 else 2 + (data[1] & 0x7F)
        if data[1] != 0x80 and offset < len(data) and data[offset] == 0x02:
            return "looks like a DER private key (an ASN.1 SEQUENCE that starts with an INTEGER): its bytes stay on the host"
    return None


class Budget(object):
    """The bytes of file contents the probe may still read (CONTENT_BUDGET in all)."""

    def __init__(self, total):
        self.left = total


BUDGET = Budget(CONTENT_BUDGET)


def describe(path, read_limit=0, budget=None):
    """lstat and stat of one path; its bytes (base64) when asked, it is a regular file and not too large.

    A read the content budget cannot afford is not made: its read_error says so and is marked `cut`."""
    budget = BUDGET if budget is None else budget
    fact = {"path": path}
    try:
        lst = os.lstat(path)
    except OSError as exc:
        fact["lstat_error"] = os_error(exc)
        return fact
    fact["link"] = stat.S_ISLNK(lst.st_mode)
    if fact["link"]:
        try:
            fact["link_target"] = os.readlink(path)
        except OSError as exc:
            fact["link_error"] = os_error(exc)
    fact["realpath"] = os.path.realpath(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        fact["stat_error"] = os_error(exc)
        return fact
    fact.update(
        kind=kind_of(st.st_mode),
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        size=st.st_size,
        mtime=st.st_mtime,
        ctime=st.st_ctime,
    )
    if read_limit and fact["kind"] == "file":
        if st.st_size > read_limit:
            fact["read_error"] = {
                "errno": 0,
                "reason": "file is %d bytes, over the %d-byte read limit" % (st.st_size, read_limit),
            }
        elif st.st_size > budget.left:
            fact["read_error"] = {
                "errno": 0,
                "reason": "not read: the probe's %d-byte budget for file contents is spent" % CONTENT_BUDGET,
                "cut": True,
            }
        else:
            try:
                # O_NONBLOCK: should the file be swapped for a FIFO after the stat, the open does not hang.
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
                try:
                    data = os.read(fd, min(read_limit, budget.left) + 1)
                finally:
                    os.close(fd)
                budget.left -= len(data)
                secret = private_key_inside(data)
                if len(data) > read_limit:
                    fact["read_error"] = {"errno": 0, "reason": "file grew over the %d-byte read limit" % read_limit}
                elif budget.left < 0:
                    fact["read_error"] = {
                        "errno": 0,
                        "reason": "not read whole: the probe's %d-byte budget for file contents is spent" % CONTENT_BUDGET,
                        "cut": True,
                    }
                elif secret:
                    fact["read_error"] = {"errno": 0, "reason": secret}
                else:
                    fact["content_b64"] = b64encode(data)
            except OSError as exc:
                fact["read_error"] = os_error(exc)
    return fact


def listing(directory, limit=None):
    """The names in a directory, sorted; `truncated` (with `total`) when there are more than the limit."""
    limit = LISTING_LIMIT if limit is None else limit
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        return {"path": directory, "error": os_error(exc)}
    return {"path": directory, "names": names[:limit], "truncated": len(names) > limit, "total": len(names), "limit": limit}


def open_error(path):
    """Why this account cannot open `path` for reading (e.g. EACCES), or None: opened and closed, nothing read."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)))
    except OSError as exc:
        return os_error(exc)
    return None


# What subprocess resets in a child (restore_signals): python3 ignores SIGPIPE and SIGXFSZ, and an
# ignored signal stays ignored across exec.
RESTORED_SIGNALS = tuple(getattr(signals, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signals, name))
STDERR_KEPT = 64 * 1024  # a command's stderr is only ever quoted (300 characters): its head is kept


class CommandTimeout(Exception):
    """A command did not finish in its time and was killed."""


def _exec_candidates(name, env):
    # subprocess's search: a name with a slash as it is, else each directory of the environment's PATH.
    if os.sep in name:
        return [name]
    return [os.path.join(directory, name) for directory in os.get_exec_path(env)]


def _start(path, argv, env, fds):
    """Start `path` with fds[0..2] as its stdin, stdout and stderr; its pid. OSError when it cannot be run."""
    if hasattr(os, "posix_spawn"):  # Python 3.8+: the C library's spawn, which reports a failed exec
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
        return os.posix_spawn(path, argv, env, file_actions=actions, setsigdef=RESTORED_SIGNALS)
    # Python 3.6 and 3.7: fork; a failed exec is reported back through a close-on-exec pipe, as subprocess does.
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child, which execs or exits
        try:
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for number in RESTORED_SIGNALS:
                signals.signal(number, signals.SIG_DFL)
            os.execve(path, argv, env)
        except OSError as exc:
            os.write(report_w, str(exc.errno or errno.ENOEXEC).encode())
        finally:
            os._exit(127)
    os.close(report_w)
    try:
        failed = os.read(report_r, 32)
    finally:
        os.close(report_r)
    if failed:
        os.waitpid(pid, 0)
        code = int(failed)
        raise OSError(code, os.strerror(code), path)
    return pid


def _spawn(argv, env, fds):
    first_error = None
    for path in _exec_candidates(argv[0], env):
        try:
            return _start(path, argv, env, fds)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                first_error = first_error or exc
    if first_error is not None:
        raise first_error
    raise FileNotFoundError(errno.ENOENT, "No such file or directory", argv[0])


def run_command(argv, timeout, env=None, on_stdout=None):
    """Run argv to its end, stdin from /dev/null: (exit status, stdout bytes, stderr bytes), the exit
    status negative for a signal, as subprocess.run gives them, without importing subprocess.

    on_stdout, when given, gets each piece of stdout as it comes instead of the result keeping it; it
    returns True to stop the command (it is killed, and its status is -SIGKILL). Only the first
    STDERR_KEPT bytes of stderr are kept. OSError when the
    command cannot be started (FileNotFoundError when it is not installed); CommandTimeout when it
    has not ended within `timeout` seconds (it is killed)."""
    env = os.environ if env is None else env
    null = os.open(os.devnull, os.O_RDONLY)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = _spawn(argv, env, (null, out_w, err_w))
    except OSError:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        for fd in (null, out_w, err_w):
            os.close(fd)
    chunks = {out_r: [], err_r: []}
    poller = select.poll()
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    reading, stopped, timed_out = 2, False, False
    deadline = time.monotonic() + timeout
    try:
        while reading and not stopped:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for fd, _ in poller.poll(int(left * 1000) + 1):
                data = os.read(fd, 65536)
                if not data:
                    poller.unregister(fd)
                    reading -= 1
                elif fd == out_r and on_stdout is not None:
                    stopped = stopped or bool(on_stdout(data))
                elif fd == out_r or sum(map(len, chunks[fd])) < STDERR_KEPT:
                    chunks[fd].append(data)
        if stopped or timed_out:
            os.kill(pid, signals.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    finally:
        os.close(out_r)
        os.close(err_r)
    if timed_out:
        raise CommandTimeout("%s did not finish within %s s" % (argv[0], timeout))
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    return code, b"".join(chunks[out_r]), b"".join(chunks[err_r])


def public_key(path):
    """The public half of a private key, derived here so the private key never leaves the host."""
    result = {"path": path}
    try:
        st = os.stat(path)
    except OSError as exc:
        result["error"] = os_error(exc)
        return result
    if not stat.S_ISREG(st.st_mode):
        result["error"] = {"errno": 0, "reason": "not a regular file (%s)" % kind_of(st.st_mode)}
        return result
    unreadable = open_error(path)
    if unreadable:
        # openssl would say only "Could not open file": a key this account cannot open is unread, not unusable.
        result["error"] = unreadable
        return result
    try:
        rc, stdout, stderr = run_command(["openssl", "pkey", "-in", path, "-pubout", "-passin", "pass:"], 15)
    except FileNotFoundError:
        result["error"] = {"errno": 0, "reason": "openssl is not installed on the host"}
        return result
    except CommandTimeout:
        result["error"] = {"errno": 0, "reason": "openssl pkey did not finish within 15 s"}
        return result
    if rc == 0:
        result["public_pem"] = stdout.decode("ascii", "replace")
    else:
        first = (stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[0]
        result["error"] = {"errno": 0, "reason": "openssl pkey could not read it as a private key: " + first[:300]}
    return result


def _key_bytes(path):
    """A private key's bytes, kept on the host (compared, never sent), or None when it cannot be read whole."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, READ_LIMIT + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= READ_LIMIT else None


def public_keys(paths):
    """public_key of each path, with one openssl run for keys of the same bytes (the service's copy of
    the lineage's key, the usual case): openssl's start is most of what a key costs the host.

    A copy is given its twin's answer only when both files held the same bytes before openssl read
    the first and the first still holds them after; any doubt, and it gets its own openssl run."""
    result = {}
    derived = {}  # key bytes -> (path openssl read, its answer)
    for path in paths:
        data = _key_bytes(path)
        twin = derived.get(data) if data is not None else None
        if twin is not None and "public_pem" in twin[1] and _key_bytes(twin[0]) == data:
            result[path] = dict(twin[1], path=path)
            continue
        result[path] = public_key(path)
        if data is not None and _key_bytes(path) == data:
            derived.setdefault(data, (path, result[path]))
    return result


UNIT_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "NextElapseUSecRealtime",
    "LastTriggerUSec",
    "ExecMainStartTimestamp",
    "ActiveEnterTimestamp",
    "Result",
    "ExecMainExitTimestamp",
    "ExecMainStatus",
    "User",
    "FragmentPath",
    "TimersCalendar",  # a timer's OnCalendar= specs (how often certbot.timer runs: the lifetime what-if)
    "RandomizedDelayUSec",
    "ExecStart",  # which certbot a renewal service runs
)


def units(names):
    if not names:
        return {}
    # --timestamp=unix needs systemd 251 (bookworm has 252); bullseye's 247 refuses it, and there
    # TZ=UTC alone makes the timestamps UTC text, which the audit reads as well.
    for timestamp in (["--timestamp=unix"], []):
        argv = ["systemctl", "show"] + timestamp + ["-p", ",".join(UNIT_PROPERTIES), "--"] + list(names)
        try:
            # TZ=UTC: systemd 252 prints some timestamps formatted even with --timestamp=unix.
            env = dict(os.environ, TZ="UTC", LC_ALL="C")
            rc, stdout, stderr = run_command(argv, 20, env)
        except (OSError, CommandTimeout) as exc:
            return {"_error": {"errno": 0, "reason": "systemctl show failed: " + error_text(exc)}}
        if rc == 0 or b"unix" not in stderr:
            break
    if rc != 0:
        return {
            "_error": {
                "errno": 0,
                "reason": "systemctl show exited %d: %s" % (rc, stderr.decode("utf-8", "replace").strip()[:300]),
            }
        }
    result = {}
    blocks = stdout.decode("utf-8", "replace").strip().split("\n\n")
    for name, block in zip(names, blocks):
        props = {}
        for line in block.splitlines():
            key, _, value = line.partition("=")
            if key == "TimersCalendar" and key in props:  # one line per OnCalendar=: keep them all
                value = props[key] + " " + value
            props[key] = value
        result[name] = props
    return result


def processes():
    """The names of the running processes, and why that list is not all of them (None: it is).

    /proc mounted with hidepid hides or closes other users' processes to an account that is not root:
    such a list is partial, never a proof that a daemon is not running."""
    names = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError as exc:
        return None, {"errno": exc.errno or 0, "reason": "cannot list /proc: " + error_text(exc)}
    if "1" not in pids and os.getpid() != 1:
        return None, {"errno": errno.EACCES, "reason": "/proc hides other users' processes (hidepid): pid 1 is not listed"}
    for pid in pids:
        try:
            with open("/proc/%s/comm" % pid) as comm:
                names.add(comm.read().strip())
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                return None, {"errno": exc.errno, "reason": "cannot read /proc/%s/comm: %s" % (pid, exc.strerror)}
            # ENOENT, ESRCH: the process ended between the listing and the read.
    return sorted(names), None


def account(uid=None, gid=None, user=None, group=None):
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            return {"name": user, "uid": entry.pw_uid, "gid": entry.pw_gid}
        if group is not None:
            return {"name": group, "gid": grp.getgrnam(group).gr_gid}
        if uid is not None:
            return {"uid": uid, "name": pwd.getpwuid(uid).pw_name}
        return {"gid": gid, "name": grp.getgrgid(gid).gr_name}
    except KeyError:
        return None


# --- facts of the catalog beyond the runbook: lineages, reloads, renewal runs, alert rules -------
JOURNAL_LINE_LIMIT = 20000
JOURNAL_TIME_S = 15
JOURNAL_EVENT_LIMIT = 50
# systemd logs each finished job with JOB_TYPE and JOB_RESULT; a restart ends as a "start" job.
STARTING_JOBS = ("start", "restart", "try-restart", "reload", "try-reload", "reload-or-start")
SERVICE_RELOAD_LINE = "certificate reloaded"  # the line the runbook's deploy hook greps for
CERTBOT_LOG_DIR = "/var/log/letsencrypt"
CERTBOT_LOG_FILES = 5
CERTBOT_LOG_TAIL = 1024 * 1024
CERTBOT_LOG_LINES = 400
# certbot's log lines that say when a run began, what it did and how it ended.
CERTBOT_LOG_MARKERS = (
    "certbot version:",
    "Processing /",
    "Requesting a certificate for",
    "Renewing an existing certificate for",
    "Simulating renewal of an existing certificate",
    "Simulating a certificate request",
    "Successfully received certificate",
    "Congratulations, all",
    "Congratulations! Your certificate and chain have been saved",  # certbot 1.x's report of a new certificate
    "Certificate not yet due for renewal",
    "No renewals were attempted",
    "no renewal failures",
    "renew failure(s)",
    "Exiting abnormally",
    ":ERROR:",
    ":CRITICAL:",
)
RULE_FILES_LIMIT = 50
PROMTOOL_TIME_S = 30
PROMTOOL_OUTPUT_LIMIT = 16 * 1024
EXPIRY_METRIC = "stemedb_tls_cert_expiry_seconds"
WARNING_ALERT = "CertificateExpiringWarning"
SOON_ALERT = "CertificateExpiringSoon"
# What a lifetime-relative rule may read besides the expiry: the certificate's notBefore and
# notAfter as Unix timestamps (both exported by the service; the promtool test holds them too).
NOT_BEFORE_METRIC = "stemedb_tls_cert_not_before_timestamp_seconds"
NOT_AFTER_METRIC = "stemedb_tls_cert_not_after_timestamp_seconds"
# The lifetimes Let's Encrypt announced (64 days from 2027-02-10, 45 from 2028-02-16) and its
# 6-day profile; 90 days is the runbook's own, proven by the points above.
WHAT_IF_LIFETIMES = (64, 45, 6)


def other_lineage(name, domain):
    """certbot's name for another lineage of the same domain: <domain>-0001, <domain>-0002, ..."""
    suffix = name[len(domain) + 1 :]
    return name.startswith(domain + "-") and len(suffix) == 4 and suffix.isdigit()


def _message_text(value):
    # journald's JSON gives a message that is not valid UTF-8 as a list of byte values.
    if isinstance(value, list):
        return bytes(v for v in value if isinstance(v, int) and 0 <= v < 256).decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


JOURNAL_DIRS = ("/var/log/journal", "/run/log/journal")


def system_journal_closed():
    """Why this account cannot read the system journal (not root, nor in systemd-journal or adm), or None."""
    try:
        with open("/etc/machine-id") as f:
            machine = f.read().strip()
    except OSError:
        return None
    for directory in JOURNAL_DIRS:
        path = os.path.join(directory, machine, "system.journal")
        unreadable = open_error(path)
        if unreadable and unreadable["errno"] in (errno.EACCES, errno.EPERM):
            # The machine id stays out of the message: 32 hex digits read as key material to the redactor.
            shown = os.path.join(directory, "<machine-id>", "system.journal")
            unreadable["reason"] = "cannot read the system journal %s: %s" % (shown, unreadable["reason"])
            return unreadable
    return None


def service_events(unit, since):
    """Starts, restarts and reloads of `unit` from `since` (epoch seconds) on, from its journal, oldest first.

    `systemctl show` keeps no reload time and keeps start times to the second only; the journal
    has both, to the microsecond. The service's own "certificate reloaded" line counts as a reload.
    """
    result = {"unit": unit, "since": since, "events": [], "entries_read": 0, "truncated": False}
    closed = system_journal_closed()
    if closed:
        # journalctl would answer with this account's own entries only, and exit 0: no reload seen is not no reload.
        result["error"] = closed
        return result
    argv = ["journalctl", "--no-pager", "-q", "-o", "json", "-u", unit, "--since", "@%d" % max(0, int(since) - 1)]
    env = dict(os.environ, LC_ALL="C", SYSTEMD_PAGER="")
    pending = [b""]  # the last line's start, until its end comes

    def take(data):
        """Each whole line of journalctl's output as it comes; True (stop journalctl) past the line limit."""
        lines = (pending[0] + data).split(b"\n")
        pending[0] = lines.pop()
        return any(_take_line(result, raw, unit, since) for raw in lines)

    try:
        rc, _, stderr = run_command(argv, JOURNAL_TIME_S, env, on_stdout=take)
    except CommandTimeout:
        result["error"] = {"errno": 0, "reason": "journalctl did not finish within %d s" % JOURNAL_TIME_S}
        return result
    except OSError as exc:
        result["error"] = {"errno": 0, "reason": "journalctl cannot run: " + error_text(exc)}
        return result
    if pending[0] and not result["truncated"]:  # a last line without its newline
        _take_line(result, pending[0], unit, since)
    if rc not in (0, -signals.SIGKILL) and not result["entries_read"]:
        result["error"] = {
            "errno": 0,
            "reason": "journalctl exited %d: %s" % (rc, stderr[:4096].decode("utf-8", "replace").strip()[:300]),
        }
    return result


def _take_line(result, raw, unit, since):
    """Count one line of the journal and keep its event; True once the line limit is passed."""
    if result["truncated"]:
        return True
    result["entries_read"] += 1
    if result["entries_read"] > JOURNAL_LINE_LIMIT:
        result["truncated"] = True
        return True
    event = _service_event(raw, unit, since)
    if event is not None and len(result["events"]) < JOURNAL_EVENT_LIMIT:
        result["events"].append(event)
    return False


def _service_event(raw, unit, since):
    try:
        entry = json_loads(raw.decode("utf-8", "replace"))
        moment = int(entry.get("__REALTIME_TIMESTAMP", "0")) / 1e6
    except (ValueError, TypeError, AttributeError):
        return None
    message = _message_text(entry.get("MESSAGE"))
    if entry.get("JOB_RESULT") == "done" and entry.get("JOB_TYPE") in STARTING_JOBS:
        kind = entry["JOB_TYPE"]
    elif entry.get("_SYSTEMD_UNIT") == unit and SERVICE_RELOAD_LINE in message.lower():
        kind = "service-reloaded"
    else:
        return None
    if moment < since:
        return None
    return {"time": moment, "kind": kind, "message": message[:200]}


def _read_tail(path, size, limit):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        start = max(0, size - limit)
        os.lseek(fd, start, os.SEEK_SET)
        chunks = []
        left = limit
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return start, b"".join(chunks)
    finally:
        os.close(fd)


def _local_epoch(stamp):
    """certbot logs local time ("2026-11-28 00:51:05,227"); the host's own zone rules convert it."""
    try:
        return time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")) + int(stamp[20:23]) / 1000.0
    except (ValueError, OverflowError):
        return None


def certbot_logs(directory):
    """The lines of certbot's newest logs that say when each run began, what it did and how it ended."""
    result = {"dir": directory, "logs": []}
    try:
        names = [n for n in os.listdir(directory) if n == "letsencrypt.log" or n.startswith("letsencrypt.log.")]
    except OSError as exc:
        result["error"] = os_error(exc)
        return result
    found = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((st.st_mtime, path, st.st_size))
    for mtime, path, size in sorted(found, reverse=True)[:CERTBOT_LOG_FILES]:
        item = {"path": path, "mtime": mtime, "size": size, "lines": []}
        try:
            start, data = _read_tail(path, size, CERTBOT_LOG_TAIL)
        except OSError as exc:
            item["error"] = os_error(exc)
            result["logs"].append(item)
            continue
        item["read_from"] = start
        stamp = None
        for line in data.decode("utf-8", "replace").splitlines():
            if len(line) > 23 and line[4] == "-" and line[10] == " " and line[19] == ",":
                stamp = line[:23]
            if any(marker in line for marker in CERTBOT_LOG_MARKERS):
                item["lines"].append({"time": _local_epoch(stamp) if stamp else None, "text": line[:500]})
        # The newest lines matter most: a long log keeps its last ones.
        del item["lines"][:-CERTBOT_LOG_LINES]
        result["logs"].append(item)
    return result


def rule_files_block(config_text):
    """The `rule_files:` key of a prometheus.yml and its lines, alone: the rest of the file (scrape
    credentials, remote_write tokens) never leaves the host."""
    lines = config_text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("rule_files:"):
            block = [line]
            for item in lines[index + 1 :]:
                if item.strip() and not item[:1].isspace() and not item.lstrip().startswith(("-", "#")):
                    break
                block.append(item)
            return "\n".join(block).rstrip() + "\n"
    return ""


def rule_file_patterns(config_text):
    """The `rule_files:` entries of a prometheus.yml, read without a YAML library (the common forms:
    a block list, or a flow list on one line). The auditing machine checks them against a real parse."""
    lines = config_text.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("rule_files:"):
            continue
        rest = line[len("rule_files:") :].split(" #")[0].strip()
        if rest.startswith("["):
            return [_unquote(item) for item in rest.strip("[]").split(",") if item.strip()]
        patterns = []
        for item in lines[index + 1 :]:
            stripped = item.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if not item[:1].isspace() and not stripped.startswith("-"):
                break
            if stripped.startswith("-"):
                patterns.append(_unquote(stripped[1:].split(" #")[0]))
        return patterns
    return []


def _unquote(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _which(name):
    for directory in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep) + ["/usr/bin", "/usr/local/bin"]:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def promtool_points(warn_days, crit_days):
    """The runbook's alerts, tested just outside and inside each threshold: 31, 29, 8 and 6 days."""
    return [
        {"days": warn_days + 1, "expect": []},
        {"days": warn_days - 1, "expect": [WARNING_ALERT]},
        {"days": crit_days + 1, "expect": [WARNING_ALERT]},
        {"days": crit_days - 1, "expect": [WARNING_ALERT, SOON_ALERT]},
    ]


def lifetime_points():
    """For each shorter lifetime: a healthy certificate an hour before certbot 4.0 renews it (a third of
    the lifetime left, half under 10 days) and, over 30 days, an hour before a runbook-pinned 30 days
    renews it: no alert; renewal overdue (a quarter left): the warning; 5% left: both."""
    points = []
    for lifetime in WHAT_IF_LIFETIMES:
        renews_at = lifetime / 2.0 if lifetime < 10 else lifetime / 3.0
        healthy = [renews_at] + ([30.0] if lifetime > 31 else [])
        for days in healthy:
            points.append({"lifetime": lifetime, "days": round(days + 1 / 24.0, 3), "expect": []})
        points.append({"lifetime": lifetime, "days": round(lifetime * 0.25, 3), "expect": [WARNING_ALERT]})
        points.append({"lifetime": lifetime, "days": round(lifetime * 0.05, 3), "expect": [WARNING_ALERT, SOON_ALERT]})
    return points


def _point_tag(point):
    """The comment that names a point in promtool's report of a failure."""
    if "lifetime" in point:
        return "# lifetime %d point %s days" % (point["lifetime"], point["days"])
    return "# at %d days" % point["days"]


def _point_series(domain, point):
    """The metric held at the point's days for a day; notBefore/notAfter consistent with it at 1d."""
    labels = '{domain="%s"}' % domain
    seconds = round(point["days"] * 86400)
    not_after = 86400 + seconds
    not_before = not_after - int(point.get("lifetime", 90)) * 86400
    return [
        {"series": EXPIRY_METRIC + labels, "values": "%dx144" % seconds},
        {"series": NOT_AFTER_METRIC + labels, "values": "%dx144" % not_after},
        {"series": NOT_BEFORE_METRIC + labels, "values": "%dx144" % not_before},
    ]


def promtool_test(promtool, rule_files, domain, points, more_points=()):
    """`promtool test rules` on the loaded rule files, with the test on stdin: nothing is written.

    Each point is one test: the metric held at that many days for a day (so a `for:` of up to a
    day elapses), then which of the two alerts fire. Rules are evaluated every 10 minutes: 15
    points a minute apart were over promtool's 30 s on a loaded host. The comment in each expression names the
    point in promtool's report of a failure.
    """
    alerts = "|".join((WARNING_ALERT, SOON_ALERT))
    tests = []
    for point in list(points) + list(more_points):
        tests.append(
            {
                "name": "metric at %s days" % point["days"],
                "interval": "10m",
                "input_series": _point_series(domain, point),
                "promql_expr_test": [
                    {
                        "expr": 'count by (alertname) (ALERTS{alertstate="firing",alertname=~"%s"}) %s'
                        % (alerts, _point_tag(point)),
                        "eval_time": "1d",
                        "exp_samples": [{"labels": '{alertname="%s"}' % name, "value": 1} for name in point["expect"]],
                    }
                ],
            }
        )
    import subprocess  # only a Prometheus server runs promtool (and its stdin needs a writer besides the reader)

    document = json_dumps({"rule_files": rule_files, "evaluation_interval": "10m", "tests": tests}).encode()
    result = {"path": promtool, "points": points, "lifetime_points": list(more_points)}
    try:
        version = subprocess.run(
            [promtool, "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10
        )
        result["version"] = (version.stdout.decode("utf-8", "replace").splitlines() or [""])[0][:200]
        done = subprocess.run(
            [promtool, "test", "rules", "/dev/stdin"],
            input=document,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=PROMTOOL_TIME_S,
        )
    except subprocess.TimeoutExpired:
        result["error"] = {"errno": 0, "reason": "promtool did not finish within %d s" % PROMTOOL_TIME_S}
        return result
    except OSError as exc:
        result["error"] = {"errno": 0, "reason": "promtool cannot run: " + error_text(exc)}
        return result
    result["rc"] = done.returncode
    result["output"] = done.stdout[:PROMTOOL_OUTPUT_LIMIT].decode("utf-8", "replace")
    return result


def prometheus_facts(params, files, add):
    """Where a Prometheus server is audited: its config, the rule files it loads, and promtool's verdict."""
    config = params["prometheus_config"]
    add(config)  # stat only: the config's text stays here (see rule_files_block)
    result = {
        "config": config,
        "rule_files_block": None,
        "rule_patterns": [],
        "rule_files": [],
        "rule_files_truncated": False,
        "promtool": None,
    }
    read = describe(config, READ_LIMIT)
    if "content_b64" not in read:
        if "read_error" in read:
            result["read_error"] = read["read_error"]
        return result
    block = rule_files_block(b64decode(read["content_b64"]).decode("utf-8", "replace"))
    patterns = rule_file_patterns(block)
    result["rule_files_block"] = block
    result["rule_patterns"] = patterns

    import glob  # a Prometheus server's rule_files are glob patterns, with every form glob knows

    base = os.path.dirname(config)
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        for path in sorted(glob.glob(full)):
            if path in result["rule_files"]:
                continue
            if len(result["rule_files"]) >= RULE_FILES_LIMIT:
                result["rule_files_truncated"] = True  # MON-02 does not judge a cut set of rules
                continue
            result["rule_files"].append(path)
            add(path, READ_LIMIT)
    promtool = _which("promtool")
    if promtool and result["rule_files"]:
        points = promtool_points(int(params.get("warn_days", 30)), int(params.get("crit_days", 7)))
        result["promtool"] = promtool_test(promtool, result["rule_files"], params["domain"], points, lifetime_points())
    elif promtool:
        result["promtool"] = {"path": promtool}
    return result


class Gathered(object):
    """What the gatherers found so far: file facts by path and directory listings by path."""

    def __init__(self):
        self.files = {}
        self.listings = {}

    def add(self, path, read_limit=0):
        self.files[path] = describe(path, read_limit)

    def listed(self, directory):
        self.listings[directory] = listing(directory)
        return self.listings[directory].get("names", [])


def lineage_paths(params):
    le, domain = params["letsencrypt_dir"], params["domain"]
    return {
        "le": le,
        "live": os.path.join(le, "live", domain),
        "archive": os.path.join(le, "archive", domain),
        "hooks": os.path.join(le, "renewal-hooks", "deploy"),
    }


def gather_certificate_files(params, found):
    """The service's copy, the lineage's live files, its renewal conf and every archived generation.

    Every name in archive/<domain>/ is stat'ed (KEY-01 judges every archived key's mode); only the
    archived certificates (`cert*.pem`, public) are read, for CRT-04; keys are never read."""
    paths = lineage_paths(params)
    found.add(os.path.join(params["tls_dir"], "cert.pem"), READ_LIMIT)
    found.add(os.path.join(params["tls_dir"], "key.pem"))
    for name in ("cert.pem", "chain.pem", "fullchain.pem"):
        found.add(os.path.join(paths["live"], name), READ_LIMIT)
    found.add(os.path.join(paths["live"], "privkey.pem"))
    found.add(os.path.join(paths["le"], "renewal", params["domain"] + ".conf"), READ_LIMIT)
    for name in found.listed(paths["archive"]):
        found.add(os.path.join(paths["archive"], name), READ_LIMIT if name.startswith("cert") else 0)


def certbot_runs(fact, name):
    """certbot's list_hooks: a regular file (symlinks followed) with an execute bit, its name not ending in `~`."""
    return fact.get("kind") == "file" and bool(fact.get("mode", 0) & 0o111) and not name.endswith("~")


def gather_hooks(params, found):
    """The configured deploy hook and every file in renewal-hooks/deploy: each is stat'ed, and only
    those certbot runs are read (a directory of 10,000 data files costs 10,000 stats, no reads)."""
    hooks_dir = lineage_paths(params)["hooks"]
    found.add(params["deploy_hook"], HOOK_READ_LIMIT)
    for name in found.listed(hooks_dir):
        path = os.path.join(hooks_dir, name)
        if path == params["deploy_hook"]:
            continue
        found.add(path)
        if certbot_runs(found.files[path], name):
            found.add(path, HOOK_READ_LIMIT)


CRON_D_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def cron_reads(name):
    """Whether cron reads /etc/cron.d/<name>: its name is run-parts-clean, [A-Za-z0-9_-]+ (the
    auditor's host/cron.py holds the same rule)."""
    return bool(name) and all(c in CRON_D_NAME_CHARS for c in name)


def gather_cron(found):
    """/etc/crontab, /etc/cron.d and the users' crontabs; every file is read, the ones cron reads
    first (a file in /etc/cron.d whose name is not run-parts-clean is never read by cron)."""
    found.add("/etc/crontab", READ_LIMIT)
    for directory in CRON_DIRS:
        names = found.listed(directory)
        read_by_cron = [n for n in names if directory != "/etc/cron.d" or cron_reads(n)]
        first = set(read_by_cron)
        for name in read_by_cron + [n for n in names if n not in first]:
            found.add(os.path.join(directory, name), READ_LIMIT)


# Which certbot is installed, and how, read from package metadata: certbot itself is never run (a
# run may renew, and it is slow). The executables a scheduler or an admin's PATH may name; the
# site directories each kind of installation puts certbot's metadata in.
CERTBOT_EXECUTABLES = (
    "/usr/local/bin/certbot",
    "/usr/bin/certbot",
    "/bin/certbot",
    "/snap/bin/certbot",
    "/opt/certbot/bin/certbot",
)
CERTBOT_SITE_DIRS = (
    "/usr/lib/python3/dist-packages",  # Debian's python3-certbot
    "/usr/lib/python3*/site-packages",  # RPM (EPEL) python3-certbot
    "/usr/lib64/python3*/site-packages",
    "/usr/local/lib/python3*/dist-packages",  # pip into the system's python
    "/usr/local/lib/python3*/site-packages",
)
CERTBOT_META_SUFFIXES = (".dist-info", ".egg-info")
CERTBOT_SNAP_META = "/snap/certbot/current/meta/snap.yaml"
SNAP_LAUNCHER = "/usr/bin/snap"  # the snap's renewal service runs `snap run ... certbot.renew`
CERTBOT_DPKG_LISTS = ("/var/lib/dpkg/info/certbot.list", "/var/lib/dpkg/info/python3-certbot.list")
CERTBOT_SYSCONFIG = "/etc/sysconfig/certbot"  # RHEL/EPEL: certbot-renew.service's hooks
CERTBOT_CLI_INI = ("/etc/letsencrypt/cli.ini", "/root/.config/letsencrypt/cli.ini")  # certbot's config files, root's
METADATA_LIMIT = 64 * 1024
SITE_DIRS_LIMIT = 20


def certbot_meta_name(name):
    """Whether a site directory's entry is certbot's metadata: certbot-<digit>...(.dist-info|.egg-info),
    no slash (so `certbot-ext-1.0.dist-info`, another distribution, is not)."""
    if not name.startswith("certbot-") or name[8:9] not in tuple("0123456789") or "/" in name:
        return False
    return any(name.endswith(suffix) and len(name) >= 9 + len(suffix) for suffix in CERTBOT_META_SUFFIXES)


def site_dirs(pattern):
    """The directories a site pattern names, as glob.glob gives them, without glob (it imports re): a
    pattern is a path, or a path with one `python3*` component (python3.9, python3.11, ...)."""
    parent, star, rest = pattern.rpartition("/python3*/")
    if not star:
        return [pattern] if os.path.lexists(pattern) else []
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    found = [os.path.join(parent, n, rest) for n in names if n.startswith("python3")]
    return [path for path in found if os.path.lexists(path)]


def _venv_site_dirs(found):
    """The site directories of the virtualenvs the certbot executables live in (the EFF's /opt/certbot)."""
    dirs = []
    for path in CERTBOT_EXECUTABLES:
        real = found.files[path].get("realpath") or ""
        root = os.path.dirname(os.path.dirname(real))
        if os.path.basename(os.path.dirname(real)) == "bin" and root not in ("/", "/usr", "/usr/local"):
            found.add(os.path.join(root, "pyvenv.cfg"))
            if found.files[os.path.join(root, "pyvenv.cfg")].get("kind") == "file":
                dirs.append(os.path.join(root, "lib", "python3*", "site-packages"))
    return dirs


def _certbot_site(found, directory):
    """certbot's metadata in one site directory: each dist-info METADATA or egg-info PKG-INFO is read."""
    try:
        names = sorted(n for n in os.listdir(directory) if certbot_meta_name(n))
    except OSError as exc:
        return {"error": os_error(exc)}
    for name in names:
        meta = os.path.join(directory, name)
        if name.endswith(".dist-info"):
            found.add(os.path.join(meta, "METADATA"), METADATA_LIMIT)
        elif os.path.isdir(meta):
            found.add(os.path.join(meta, "PKG-INFO"), METADATA_LIMIT)
        else:
            found.add(meta, METADATA_LIMIT)  # an egg-info file is the PKG-INFO itself
    return {"names": names}


def gather_certbot_install(found):
    """Which certbot is installed and how (Debian or RPM package, pip, snap), without running it."""
    for path in CERTBOT_EXECUTABLES + CERTBOT_DPKG_LISTS + (SNAP_LAUNCHER,):
        found.add(path)
    found.add(CERTBOT_SNAP_META, METADATA_LIMIT)
    found.add(CERTBOT_SYSCONFIG, READ_LIMIT)
    for path in CERTBOT_CLI_INI:
        found.add(path, READ_LIMIT)
    sites = {}
    for pattern in CERTBOT_SITE_DIRS + tuple(_venv_site_dirs(found)):
        for directory in sorted(site_dirs(pattern))[:SITE_DIRS_LIMIT]:
            sites[directory] = _certbot_site(found, directory)
    return {"sites": sites, "patterns": list(CERTBOT_SITE_DIRS)}


RENEW_HOOK_LINE = r"(?m)^\s*renew_hook\s*=\s*['\"]?(/[^'\"\s]+)"
SYSCONFIG_HOOK = r"--(?:deploy|renew)-hook[= ]+['\"]?(/[^'\"\s]+)"
CLI_INI_HOOK = r"(?m)^\s*(?:deploy|renew)-hook\s*[:=\s]\s*['\"]?(/[^'\"\s]+)"


def hook_paths(pattern, literal, text):
    """pattern's findall in text; re is imported only where text holds the literal every match holds."""
    if literal not in text:
        return []
    import re

    return re.findall(pattern, text)


def _text_of(found, path):
    return b64decode(found.files.get(path, {}).get("content_b64") or "").decode("utf-8", "replace")


def gather_hook_scripts(params, found):
    """The scripts hooks name (certbot runs a hook with a shell): the renewal conf's renew_hook,
    /etc/sysconfig/certbot's DEPLOY_HOOK / RENEW_HOOK and cli.ini's deploy-hook / renew-hook, when
    they are a path; each is read."""
    conf = os.path.join(params["letsencrypt_dir"], "renewal", params["domain"] + ".conf")
    paths = hook_paths(RENEW_HOOK_LINE, "renew_hook", _text_of(found, conf))
    paths += hook_paths(SYSCONFIG_HOOK, "-hook", _text_of(found, CERTBOT_SYSCONFIG))
    for cli_ini in CERTBOT_CLI_INI:
        paths += hook_paths(CLI_INI_HOOK, "-hook", _text_of(found, cli_ini))
    for path in paths[:10]:
        found.add(path, HOOK_READ_LIMIT)


def gather_other_lineages(params, found):
    """Other lineages of the same domain (`<domain>-0001`) and which lineages certbot renews (CRT-04)."""
    le = params["letsencrypt_dir"]
    found.listed(os.path.join(le, "renewal"))
    for name in found.listed(os.path.join(le, "live")):
        if other_lineage(name, params["domain"]):
            found.add(os.path.join(le, "live", name, "cert.pem"), READ_LIMIT)


def gather_accounts(params, files):
    """The service's user and group, and the name of every owner seen on a file."""
    accounts = {
        "service_user": account(user=params["service_user"]),
        "service_group": account(group=params["service_group"]),
        "users": {},
        "groups": {},
    }
    for fact in files.values():
        if "uid" in fact and str(fact["uid"]) not in accounts["users"]:
            accounts["users"][str(fact["uid"])] = (account(uid=fact["uid"]) or {}).get("name")
        if "gid" in fact and str(fact["gid"]) not in accounts["groups"]:
            accounts["groups"][str(fact["gid"])] = (account(gid=fact["gid"]) or {}).get("name")
    return accounts


# The renewal schedulers of Debian's package, RHEL/EPEL's package and the snap, and their services.
CERTBOT_UNITS = (
    "certbot.timer",
    "certbot.service",
    "certbot-renew.timer",
    "certbot-renew.service",
    "snap.certbot.renew.timer",
    "snap.certbot.renew.service",
)


def gather_services(params, service_cert):
    """Unit states (under systemd) and the service's starts and reloads since the certificate changed."""
    if not os.path.isdir("/run/systemd/system"):
        return {"systemd": False, "units": {}, "service_events": None}
    service = params["service"] + ".service"
    events = service_events(service, service_cert["ctime"]) if "ctime" in service_cert else None
    return {
        "systemd": True,
        "units": units(["cron.service", service] + list(CERTBOT_UNITS)),
        "service_events": events,
    }


def gather(params):
    """Every fact of one host, gatherer by gatherer, as one JSON-ready document."""
    found = Gathered()
    gather_certificate_files(params, found)
    gather_hooks(params, found)
    gather_cron(found)
    gather_other_lineages(params, found)
    certbot_install = gather_certbot_install(found)
    gather_hook_scripts(params, found)
    prometheus = prometheus_facts(params, found.files, found.add) if params.get("prometheus") else None
    tls, live = params["tls_dir"], lineage_paths(params)["live"]
    key_paths = [os.path.join(tls, "key.pem"), os.path.join(live, "privkey.pem")]
    services = gather_services(params, found.files[os.path.join(tls, "cert.pem")])
    running = processes()
    return {
        "probe_version": PROBE_VERSION,
        "hostname": os.uname().nodename,  # what socket.gethostname() returns, without importing socket
        "time": time.time(),
        "euid": os.geteuid(),
        "systemd": services["systemd"],
        "files": found.files,
        "listings": found.listings,
        "public_keys": public_keys(key_paths),
        "units": services["units"],
        "processes": running[0],
        "processes_error": running[1],
        "accounts": gather_accounts(params, found.files),
        "service_events": services["service_events"],
        "certbot_logs": certbot_logs(CERTBOT_LOG_DIR),
        "certbot_install": certbot_install,
        "prometheus": prometheus,
    }


def main():
    signals.signal(signals.SIGALRM, lambda *_: os._exit(124))
    signals.alarm(TIME_BUDGET_S)
    params = json_loads(b64decode(sys.argv[1]).decode("utf-8"))
    sys.stdout.write(json_dumps(gather(params)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    main()
    # The answer is out: the interpreter's teardown (freeing every object and module) would cost
    # the host CPU for nothing, and there is nothing else to flush or close.
    sys.stderr.flush()
    os._exit(0)
