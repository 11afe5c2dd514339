# This file is sent to the audited host and run there by its own python3 (3.6 or newer, standard
# library only). It gathers, in one run, every fact the controls judge and prints them as one JSON
# document. It only reads: it never writes, never follows a FIFO, never reads a private key's bytes
# out (the key's public half is derived on the host by openssl), and bounds every read.
import base64
import grp
import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import time

PROBE_VERSION = 1
READ_LIMIT = 1024 * 1024
HOOK_READ_LIMIT = 64 * 1024
LISTING_LIMIT = 200
TIME_BUDGET_S = 60

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


def describe(path, read_limit=0):
    """lstat and stat of one path; its bytes (base64) when asked, it is a regular file and not too large."""
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
        else:
            try:
                # O_NONBLOCK: should the file be swapped for a FIFO after the stat, the open does not hang.
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
                try:
                    data = os.read(fd, read_limit + 1)
                finally:
                    os.close(fd)
                if len(data) > read_limit:
                    fact["read_error"] = {"errno": 0, "reason": "file grew over the %d-byte read limit" % read_limit}
                else:
                    fact["content_b64"] = base64.b64encode(data).decode("ascii")
            except OSError as exc:
                fact["read_error"] = os_error(exc)
    return fact


def listing(directory):
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        return {"path": directory, "error": os_error(exc)}
    return {"path": directory, "names": names[:LISTING_LIMIT], "truncated": len(names) > LISTING_LIMIT}


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
    try:
        done = subprocess.run(
            ["openssl", "pkey", "-in", path, "-pubout", "-passin", "pass:"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=15,
        )
    except FileNotFoundError:
        result["error"] = {"errno": 0, "reason": "openssl is not installed on the host"}
        return result
    except subprocess.TimeoutExpired:
        result["error"] = {"errno": 0, "reason": "openssl pkey did not finish within 15 s"}
        return result
    if done.returncode == 0:
        result["public_pem"] = done.stdout.decode("ascii", "replace")
    else:
        first = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[0]
        result["error"] = {"errno": 0, "reason": "openssl pkey could not read it as a private key: " + first[:300]}
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
    "User",
    "FragmentPath",
)


def units(names):
    if not names:
        return {}
    argv = ["systemctl", "show", "--timestamp=unix", "-p", ",".join(UNIT_PROPERTIES), "--"] + list(names)
    try:
        # TZ=UTC: systemd 252 prints some timestamps formatted even with --timestamp=unix.
        env = dict(os.environ, TZ="UTC", LC_ALL="C")
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"_error": {"errno": 0, "reason": "systemctl show failed: " + error_text(exc)}}
    if done.returncode != 0:
        return {
            "_error": {
                "errno": 0,
                "reason": "systemctl show exited %d: %s"
                % (done.returncode, done.stderr.decode("utf-8", "replace").strip()[:300]),
            }
        }
    result = {}
    blocks = done.stdout.decode("utf-8", "replace").strip().split("\n\n")
    for name, block in zip(names, blocks):
        props = {}
        for line in block.splitlines():
            key, _, value = line.partition("=")
            props[key] = value
        result[name] = props
    return result


def processes():
    names = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open("/proc/%s/comm" % pid) as comm:
                names.add(comm.read().strip())
        except OSError:
            pass
    return sorted(names)


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


def gather(params):
    le = params["letsencrypt_dir"]
    domain = params["domain"]
    tls = params["tls_dir"]
    live = os.path.join(le, "live", domain)
    archive = os.path.join(le, "archive", domain)
    hooks_dir = os.path.join(le, "renewal-hooks", "deploy")
    cron_dirs = ["/etc/cron.d", "/var/spool/cron/crontabs"]

    files = {}

    def add(path, read_limit=0):
        files[path] = describe(path, read_limit)

    add(os.path.join(tls, "cert.pem"), READ_LIMIT)
    add(os.path.join(tls, "key.pem"))
    for name in ("cert.pem", "chain.pem", "fullchain.pem"):
        add(os.path.join(live, name), READ_LIMIT)
    add(os.path.join(live, "privkey.pem"))
    add(os.path.join(le, "renewal", domain + ".conf"), READ_LIMIT)
    add(params["deploy_hook"], HOOK_READ_LIMIT)
    add("/etc/crontab", READ_LIMIT)

    listings = {}
    for directory in [hooks_dir, archive] + cron_dirs:
        listings[directory] = listing(directory)
    for name in listings[hooks_dir].get("names", []):
        add(os.path.join(hooks_dir, name), HOOK_READ_LIMIT)
    for name in listings[archive].get("names", []):
        # Archived certificates are public; archived private keys are only stat'ed.
        add(os.path.join(archive, name), 0 if name.startswith("privkey") else READ_LIMIT)
    for directory in cron_dirs:
        for name in listings[directory].get("names", []):
            add(os.path.join(directory, name), READ_LIMIT)

    key_paths = [os.path.join(tls, "key.pem"), os.path.join(live, "privkey.pem")]
    systemd = os.path.isdir("/run/systemd/system")
    unit_names = ["certbot.timer", "certbot.service", "cron.service", params["service"] + ".service"]

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

    return {
        "probe_version": PROBE_VERSION,
        "hostname": socket.gethostname(),
        "time": time.time(),
        "euid": os.geteuid(),
        "systemd": systemd,
        "files": files,
        "listings": listings,
        "public_keys": {path: public_key(path) for path in key_paths},
        "units": units(unit_names) if systemd else {},
        "processes": processes(),
        "accounts": accounts,
    }


def main():
    signal.signal(signal.SIGALRM, lambda *_: os._exit(124))
    signal.alarm(TIME_BUDGET_S)
    params = json.loads(base64.b64decode(sys.argv[1]).decode("utf-8"))
    sys.stdout.write(json.dumps(gather(params)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
