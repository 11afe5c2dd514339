"""What the probe makes the audited host spend: one openssl run per distinct key, no import it does not need.

Each saving must leave the probe's answer exactly as it was: the tests compare with the plain
per-path derivation (public_key) and with the standard library's own answer.
"""

from __future__ import annotations

import base64
import glob
import importlib
import importlib.util
import json
import marshal
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from certaudit.gather.probe import CODE_B64, LOADER, SCRIPT_B64, encode_script, probe_command
from certaudit.inventory import target_for

PROBE = Path(__file__).resolve().parents[2] / "certaudit" / "gather" / "remote_probe.py"
# The probe is untyped (it runs on the host's python3.6+): imported as a plain module, not type-checked.
remote_probe: Any = importlib.import_module("certaudit.gather.remote_probe")
OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")


@pytest.fixture
def openssl_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """openssl, counted: each run appends a line to the returned file."""
    counter = tmp_path / "openssl-runs"
    counter.write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "openssl"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {counter}\nexec {OPENSSL} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return counter


def new_key(path: Path) -> Path:
    subprocess.run([str(OPENSSL), "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)],
                   check=True, capture_output=True)  # fmt: skip
    return path


def runs(counter: Path) -> int:
    return len(counter.read_text().splitlines())


def test_a_copy_of_a_key_costs_no_second_openssl_run(tmp_path: Path, openssl_runs: Path) -> None:
    live = new_key(tmp_path / "privkey.pem")
    copy = tmp_path / "key.pem"
    copy.write_bytes(live.read_bytes())
    answers = remote_probe.public_keys([str(copy), str(live)])
    assert runs(openssl_runs) == 1
    expected = {str(p): remote_probe.public_key(str(p)) for p in (copy, live)}
    assert answers == expected
    assert answers[str(copy)]["public_pem"].startswith("-----BEGIN PUBLIC KEY-----")


def test_different_keys_each_get_their_own_run(tmp_path: Path, openssl_runs: Path) -> None:
    first, second = new_key(tmp_path / "a.pem"), new_key(tmp_path / "b.pem")
    answers = remote_probe.public_keys([str(first), str(second)])
    assert runs(openssl_runs) == 2
    assert answers[str(first)]["public_pem"] != answers[str(second)]["public_pem"]
    assert answers == {str(p): remote_probe.public_key(str(p)) for p in (first, second)}


@pytest.mark.parametrize("second", ["missing", "directory", "not-a-key"])
def test_what_cannot_be_compared_is_derived_as_before(tmp_path: Path, openssl_runs: Path, second: str) -> None:
    key = new_key(tmp_path / "key.pem")
    other = tmp_path / second
    if second == "directory":
        other.mkdir()
    elif second == "not-a-key":
        other.write_text("hello\n")
    answers = remote_probe.public_keys([str(key), str(other)])
    assert answers == {str(p): remote_probe.public_key(str(p)) for p in (key, other)}
    assert "public_pem" not in answers[str(other)] and answers[str(other)]["error"]["reason"]


def test_a_failed_derivation_is_not_lent_to_a_copy(tmp_path: Path, openssl_runs: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    copy = tmp_path / "copy.pem"
    copy.write_bytes(bad.read_bytes())
    answers = remote_probe.public_keys([str(bad), str(copy)])
    assert runs(openssl_runs) == 2  # each error names what openssl said about that file
    assert answers == {str(p): remote_probe.public_key(str(p)) for p in (bad, copy)}


# Python modules whose import the probe no longer makes every host pay: about 13 ms of a bench host's
# CPU (re alone 6 ms; json's, subprocess's and base64's Python halves import it), besides socket and ssl.
HEAVY_MODULES = ("re", "json", "subprocess", "signal", "threading", "glob", "base64", "enum", "socket", "ssl", "locale")


LOADER_IMPORTS = LOADER.split(";")[0]
# The loader's work, with the script run as `probe`, not as __main__, so that its main() does not start.
LOAD_AS_PROBE = (
    f"{LOADER_IMPORTS}\ns = sys.argv.pop(1)\ng = {{'__name__': 'probe'}}\n"
    "exec(compile(zlib.decompress(binascii.a2b_base64(s)), 'certaudit-probe', 'exec'), g)\n"
)


def _loaded_after(body: str, *args: str) -> list[str]:
    """Run `body` as the host runs the loader (python3 -I -S -c); the heavy modules loaded then."""
    script = f"{body}\nprint(' '.join(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))"
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_the_probe_starts_without_the_modules_it_does_not_need() -> None:
    """The loader and the probe's definitions import no module written in Python beyond what
    python3 itself starts with (os, stat, ...)."""
    assert LOADER_IMPORTS == "import binascii,marshal,sys,zlib"
    assert _loaded_after(LOADER_IMPORTS) == []
    assert _loaded_after(LOAD_AS_PROBE, SCRIPT_B64) == []


def test_a_whole_gather_imports_none_of_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gather() on a host with systemd's tools (stand-ins that answer like them) and a lineage
    with a renewal conf: still none of the heavy modules, openssl, systemctl and journalctl run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in (
        ("systemctl", "printf 'Id=a\\nLoadState=loaded\\n\\nId=b\\n'"),
        ("journalctl", 'printf \'{"MESSAGE": "x", "__REALTIME_TIMESTAMP": "1"}\\n\''),
        ("openssl", "echo '-----BEGIN PUBLIC KEY-----'"),
    ):
        fake = bin_dir / name
        fake.write_text(f"#!/bin/sh\necho {name} >> {tmp_path}/ran\n{script}\n")
        fake.chmod(0o755)
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tls / "key.pem").write_text("key\n")
    le = tmp_path / "le"
    (le / "renewal").mkdir(parents=True)
    (le / "renewal" / "example.com.conf").write_text("version = 2.1.0\n[renewalparams]\n")
    params = {
        "domain": "example.com", "service": "svc", "service_user": "root", "service_group": "root",
        "tls_dir": str(tls), "letsencrypt_dir": str(le), "deploy_hook": str(tmp_path / "hook"), "prometheus": False,
        "prometheus_config": "", "warn_days": 30, "crit_days": 7,
    }  # fmt: skip
    body = (
        "import os\n"
        "g['os'].path.isdir = lambda p, isdir=os.path.isdir: True if p == '/run/systemd/system' else isdir(p)\n"
        "g['system_journal_closed'] = lambda: None\n"
        "d = g['gather'](g['json_loads'](sys.argv[1]))\n"
        "assert d['units']['cron.service']['Id'] == 'a', d['units']\n"
        "assert d['service_events']['entries_read'] == 1, d['service_events']\n"
        "assert d['public_keys'][sys.argv[2]]['public_pem'].startswith('-----BEGIN PUBLIC KEY-----')\n"
        "g['json_loads'](g['json_dumps'](d))"
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    loaded = _loaded_after(LOAD_AS_PROBE + body, SCRIPT_B64, json.dumps(params), str(tls / "key.pem"))
    assert loaded == []
    assert sorted((tmp_path / "ran").read_text().split()) == ["journalctl", "openssl", "systemctl"]


def test_the_host_name_is_the_one_socket_gives() -> None:
    assert remote_probe.gather.__module__ == "certaudit.gather.remote_probe"
    import os

    assert os.uname().nodename == socket.gethostname()


# --- what replaces the modules: each gives the answer the module gave ---------------------------------
@pytest.fixture(params=["posix_spawn", "fork"])
def spawn_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """run_command as Python 3.8+ runs it (posix_spawn) and as 3.6 and 3.7 do (fork and exec)."""
    if request.param == "fork":
        monkeypatch.delattr(remote_probe.os, "posix_spawn")
    return str(request.param)


def test_run_command_gives_what_subprocess_run_gives(spawn_path: str) -> None:
    argv = ["sh", "-c", 'printf "out\\n"; printf "err" >&2; read line; echo "[$line]"; echo "$PROBE_X"; exit 3']
    env = dict(os.environ, PROBE_X="from env")
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env)
    assert remote_probe.run_command(argv, 10, env) == (3, done.stdout, done.stderr) == (3, b"out\n[]\nfrom env\n", b"err")
    assert remote_probe.run_command(["sh", "-c", "kill -TERM $$"], 10)[0] == -15


def test_run_command_big_outputs_on_both_streams(spawn_path: str) -> None:
    """Neither pipe fills while the other is read (200 KB each, written at once); stderr's head is kept."""
    script = "head -c 204800 /dev/zero & head -c 204800 /dev/zero >&2; wait"
    rc, out, err = remote_probe.run_command(["sh", "-c", script], 10)
    assert (rc, len(out)) == (0, 204800) and remote_probe.STDERR_KEPT <= len(err) < 204800


def test_run_command_finds_what_subprocess_finds(spawn_path: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        remote_probe.run_command(["certaudit-no-such-command"], 10)
    with pytest.raises(FileNotFoundError):
        remote_probe.run_command([str(tmp_path / "missing")], 10)
    not_executable = tmp_path / "tool"
    not_executable.write_text("#!/bin/sh\necho no\n")
    with pytest.raises(PermissionError):
        remote_probe.run_command([str(not_executable)], 10)
    with pytest.raises(PermissionError):  # found on PATH but not executable: subprocess says EACCES too
        remote_probe.run_command(["tool"], 10, dict(os.environ, PATH=str(tmp_path)))
    not_executable.chmod(0o755)
    assert remote_probe.run_command(["tool"], 10, dict(os.environ, PATH=f"/nonexistent:{tmp_path}")) == (0, b"no\n", b"")


def test_run_command_kills_what_does_not_end_in_time(spawn_path: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(remote_probe.CommandTimeout):
        remote_probe.run_command(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"], 0.5)
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int(pid_file.read_text()), 0)


def test_run_command_stops_when_told(spawn_path: str) -> None:
    seen: list[bytes] = []

    def take(data: bytes) -> bool:
        seen.append(data)
        return b"3" in b"".join(seen)

    rc, out, _ = remote_probe.run_command(["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; done"], 10, on_stdout=take)
    assert rc == -9 and out == b"" and b"3" in b"".join(seen)


def test_a_journal_line_without_its_newline_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """journalctl's output comes in pieces that split lines; each whole line is one entry, the last too."""
    line = json.dumps({"__REALTIME_TIMESTAMP": "2000700000", "JOB_TYPE": "reload", "JOB_RESULT": "done", "MESSAGE": "R"})
    fake = tmp_path / "journalctl"
    fake.write_text(f"#!/bin/sh\nprintf '%s' '{line}' | head -c 20; sleep 0.2; printf '%s\\n\\n%s' '{line[20:]}' '{line}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(remote_probe, "system_journal_closed", lambda: None)
    found = remote_probe.service_events("stemedb-api.service", 2000.25)
    assert found["entries_read"] == 3 and [e["time"] for e in found["events"]] == [2000.7, 2000.7]


def test_the_journal_stops_past_its_line_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "journalctl"
    fake.write_text("#!/bin/sh\nwhile true; do echo '{}'; done\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(remote_probe, "system_journal_closed", lambda: None)
    monkeypatch.setattr(remote_probe, "JOURNAL_LINE_LIMIT", 100)
    found = remote_probe.service_events("stemedb-api.service", 2000.25)
    assert (found["entries_read"], found["truncated"], "error" in found) == (101, True, False)


JSON_DOCUMENTS = [
    {"a": [1, -2.5, 1e300, float("inf"), float("-inf"), None, True, False, 'é\n"\\\x00\u2028😀'], "": {}, "b": []},
    [],
    "text",
    0,
    {"nested": [[{"x": [1.0, 0.1, -0.0]}]] * 3},
]


@pytest.mark.parametrize("document", JSON_DOCUMENTS)
def test_json_dumps_writes_what_the_json_module_writes(document: Any) -> None:
    assert remote_probe.json_dumps(document) == json.dumps(document)


@pytest.mark.parametrize(
    "text",
    [json.dumps(d) for d in JSON_DOCUMENTS]
    + [' \n{"a": 1}\r\t', '{"a": NaN, "b": Infinity, "c": -Infinity}', '"\\ud83d\\ude00"', "[1, 2.0e3, -0]"],
)
def test_json_loads_reads_what_the_json_module_reads(text: str) -> None:
    assert json.dumps(remote_probe.json_loads(text)) == json.dumps(json.loads(text))


@pytest.mark.parametrize("text", ["", "  ", "not json", '{"a": 1} x', '{"a": 1}{}', "[1,]", '"a\nb"', "{'a': 1}", "nul"])
def test_json_loads_refuses_what_the_json_module_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"Expecting|Extra data|Invalid|Unterminated"):
        json.loads(text)
    with pytest.raises(ValueError, match=r"Expecting|Extra data|Invalid|Unterminated"):
        remote_probe.json_loads(text)


def test_json_dumps_refuses_what_is_not_json() -> None:
    with pytest.raises(TypeError, match="bytes is not JSON serializable"):
        remote_probe.json_dumps({"a": b"x"})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        remote_probe.json_dumps(loop)


PEM_REGEX = re.compile(rb"-----BEGIN ([A-Z0-9 ]{0,40})PRIVATE KEY-----")
PEM_PIECES = [b"-----BEGIN ", b"-----", b"-", b"PRIVATE KEY", b"PRIVATE KEY-----", b"RSA ", b"EC ", b"ENCRYPTED ",
              b"A" * 30, b"B" * 11, b" ", b"\n", b"x", b"CERTIFICATE-----", b"\xff", b"0", b"END "]  # fmt: skip


def _pem_regex_answer(data: bytes) -> tuple[int, str] | None:
    match = PEM_REGEX.search(data)
    return (match.start(), match.group(1).decode()) if match else None


def test_the_private_key_marker_is_found_where_the_regex_finds_it() -> None:
    """private_key_block (str methods) against the regex it replaces: fixed cases and 5,000 random
    strings of the pieces a marker is made of."""
    fixed = [b"-----BEGIN PRIVATE KEY-----", b"x\n-----BEGIN RSA PRIVATE KEY-----\n", b"-----BEGIN -----BEGIN PRIVATE KEY-----",
             b"-----BEGIN " + b"A" * 40 + b"PRIVATE KEY-----", b"-----BEGIN " + b"A" * 41 + b"PRIVATE KEY-----",
             b"------BEGIN EC PRIVATE KEY------", b"-----BEGIN PRIVATE KEY----", b"",
             b"-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----"]  # fmt: skip
    rng = random.Random(16)
    samples = fixed + [b"".join(rng.choice(PEM_PIECES) for _ in range(rng.randint(1, 12))) for _ in range(5000)]
    for data in samples:
        assert remote_probe.private_key_block(data) == _pem_regex_answer(data), data


@pytest.mark.parametrize(
    "name", ["certbot", "certbot-ok_1", "a.b", "with space", "x~", "", "é", "ok\n", "UPPER-lower_09", "-", "a/b"]
)
def test_cron_d_names_are_judged_as_the_auditor_judges_them(name: str) -> None:
    assert remote_probe.cron_reads(name) == (re.fullmatch(r"[A-Za-z0-9_-]+", name) is not None)


@pytest.mark.parametrize(
    "name",
    ["certbot-2.1.0.egg-info", "certbot-4.0.0.dist-info", "certbot-1.dist-info", "certbot-.dist-info", "certbot-x1.dist-info",
     "certbot-1.egg-info.bak", "certbot-dns-1.0.dist-info", "certbot-2.1.0-py3.11.egg-info", "certbot-2\n.dist-info",
     "certbot-2.dist-info\n", "certbot-٣.dist-info", "certbot-1dist-info", "python3-certbot-1.0.dist-info", "certbot-1.0"],
)  # fmt: skip
def test_certbot_metadata_names_are_the_ones_the_pattern_names(name: str) -> None:
    assert remote_probe.certbot_meta_name(name) == (re.fullmatch(r"certbot-[0-9][^/]*\.(dist-info|egg-info)", name) is not None)


def test_site_directories_are_the_ones_glob_finds(tmp_path: Path) -> None:
    for path in ("lib/python3/dist-packages", "lib/python3.9/site-packages", "lib/python3.11/site-packages",
                 "lib/python3.12/other", "lib/python2.7/site-packages", "lib/.python3.8/site-packages"):  # fmt: skip
        (tmp_path / path).mkdir(parents=True)
    (tmp_path / "lib" / "python3.13").write_text("a file")
    (tmp_path / "lib" / "python3.10").symlink_to(tmp_path / "lib" / "python3.11")
    (tmp_path / "lib" / "python3.14").mkdir()
    (tmp_path / "lib" / "python3.14" / "site-packages").symlink_to(tmp_path / "nowhere")
    for pattern in ("lib/python3/dist-packages", "lib/python3*/site-packages", "lib/missing/x", "nolib/python3*/site-packages"):
        full = str(tmp_path / pattern)
        assert sorted(remote_probe.site_dirs(full)) == sorted(glob.glob(full)), pattern


def _signal_masks(status: bytes) -> dict[str, int]:
    """SigBlk and SigIgn of /proc/<pid>/status, the standard signals (1-31) only: glibc's spawn leaves
    its own two internal signals (32, 33) ignored, and glibc sets them up again in every program."""
    lines = dict(line.split(b":\t") for line in status.splitlines())
    return {name: int(lines[name.encode()], 16) & 0x7FFFFFFF for name in ("SigBlk", "SigIgn")}


def test_a_command_gets_the_signals_subprocess_gives_it(spawn_path: str) -> None:
    """python3 ignores SIGPIPE; subprocess restores it for a child, and so does run_command (an
    openssl or journalctl writing into a closed pipe ends as it would from a shell)."""
    argv = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]
    expected = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=True).stdout
    rc, stdout, _ = remote_probe.run_command(argv, 10)
    assert rc == 0 and _signal_masks(stdout) == _signal_masks(expected)
    assert not _signal_masks(stdout)["SigIgn"] & (1 << (13 - 1))  # SIGPIPE


def test_stderr_is_kept_to_its_head(spawn_path: str) -> None:
    rc, _, err = remote_probe.run_command(["sh", "-c", "head -c 1000000 /dev/zero >&2; echo done"], 10)
    assert rc == 0 and remote_probe.STDERR_KEPT <= len(err) < remote_probe.STDERR_KEPT + 65536


LOADER_SHOWS = "import sys\nprint(__name__, sys.argv[1:])\n"


def _run_loader(script_b64: str, code_b64: str) -> str:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", LOADER, script_b64, code_b64, "params"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_host_with_this_bytecode_runs_the_code_it_was_sent() -> None:
    """The same magic number: the marshalled code runs (the source is not even looked at), as
    __main__, and finds its parameters in sys.argv[1]."""
    _, code = encode_script(LOADER_SHOWS)
    assert _run_loader("not base64 at all", code) == "__main__ ['params']\n"


def test_another_host_compiles_the_source() -> None:
    """Another magic number (another python3 minor release): the source is compiled and run instead."""
    source, code = encode_script(LOADER_SHOWS)
    other = zlib.decompress(base64.b64decode(code))
    foreign = base64.b64encode(zlib.compress(bytes([other[0] ^ 0xFF]) + other[1:])).decode()
    assert _run_loader(source, foreign) == "__main__ ['params']\n"
    shown, _ = encode_script("print('from the source')\n")
    assert _run_loader(shown, foreign) == "from the source\n"


def test_the_probe_code_is_its_source_compiled() -> None:
    """What a host with this bytecode runs is what compiling the source gives."""
    source = zlib.decompress(base64.b64decode(SCRIPT_B64)).decode()
    code = zlib.decompress(base64.b64decode(CODE_B64))
    assert source == PROBE.read_text()
    assert code[:4] == importlib.util.MAGIC_NUMBER
    assert marshal.loads(code[4:]) == compile(source, "certaudit-probe", "exec", dont_inherit=True, optimize=0)


def test_the_command_fits_in_one_argument_with_room_to_spare() -> None:
    """sshd hands the command to the login shell as one argument (`sh -c COMMAND`), and Linux takes
    no argument over 128 KB (MAX_ARG_STRLEN): the source and the code together stay under 96 KB."""
    target = target_for("h", {"ansible_host": "127.0.0.1"})
    assert len(probe_command(target).encode()) < 96 * 1024


@pytest.mark.parametrize(
    "text",
    ["renew_hook = /usr/local/bin/reload\n", "\n  \nrenew_hook\n=\n'/x y'\nrenew_hook = /z", "# renew_hook = /a\n", "",
     'CERTBOT_ARGS=""\nDEPLOY_HOOK="--deploy-hook /usr/local/bin/d"\nRENEW_HOOK="--renew-hook=\'/r\'"', "--pre-hook /p",
     "deploy-hook = /usr/local/bin/c\n  renew-hook: '/r'\n"],
)  # fmt: skip
def test_hook_lines_are_read_as_the_patterns_read_them(text: str) -> None:
    patterns = (
        (remote_probe.RENEW_HOOK_LINE, "renew_hook"),
        (remote_probe.SYSCONFIG_HOOK, "-hook"),
        (remote_probe.CLI_INI_HOOK, "-hook"),
    )
    for pattern, literal in patterns:
        assert remote_probe.hook_paths(pattern, literal, text) == re.findall(pattern, text)
