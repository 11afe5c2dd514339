"""The `certaudit` command: check, sign and make keys for the evidence of audit runs.

Audits themselves run through pytest (`pytest checks ...`); this command is for what comes after,
when an auditor, perhaps a year later, must trust that a run directory is what the run wrote.

Exit status: 0 done (verified), 1 not verified (or merged with findings), 4 a bad input: the
command could not be carried out (a missing directory, an unusable key, a file that already
exists, a part that is not certaudit evidence, an unknown option) — one line on stderr, never a
traceback, and the same status as an audit's own usage error (pytest's 4).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from certaudit import __version__
from certaudit.errors import CertauditError
from certaudit.evidence.manifest import MANIFEST, SIGNATURE, keygen, verify, write_manifest
from certaudit.evidence.merge import merge_runs
from certaudit.evidence.quarterly import diff, load_run, render

__all__ = ["main"]

EXIT_OK = 0
EXIT_NOT_VERIFIED = 1
EXIT_USAGE = 4  # as pytest's usage error: one status for every bad input certaudit meets
DEFAULT_KEY_DIR = "~/.config/certaudit"
DEFAULT_KEY_NAME = "signing-key"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certaudit",
        description="Check, sign and make keys for the evidence of certaudit runs (reports/<UTC timestamp>-<job>/).",
        epilog="Exit status: 0 done or verified, 1 not verified, 2 the command could not be carried out.",
    )
    parser.add_argument("--version", action="version", version=f"certaudit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "verify",
        help=f"check a run directory against its {MANIFEST} (and {SIGNATURE})",
        description=f"Check every file of a run directory against its {MANIFEST}; with --public-key, "
        f"also check {SIGNATURE}. A signed directory verifies only with --public-key: a signature "
        "checked against a key shipped beside it proves nothing.",
    )
    check.add_argument("dir", metavar="DIR", type=Path, help="the run directory")
    check.add_argument("--public-key", metavar="PUB", type=Path, help="the signer's Ed25519 public key (PEM)")

    make = commands.add_parser(
        "keygen",
        help="make an Ed25519 signing key pair",
        description="Write NAME.pem (private, mode 0600) and NAME.pub.pem (public, for auditors) into DIR. "
        "Existing files are never overwritten.",
    )
    make.add_argument(
        "--out-dir", metavar="DIR", default=DEFAULT_KEY_DIR, help=f"where to write the keys (default: {DEFAULT_KEY_DIR})"
    )
    make.add_argument("--name", metavar="NAME", default=DEFAULT_KEY_NAME, help=f"file name stem (default: {DEFAULT_KEY_NAME})")

    sign = commands.add_parser(
        "sign",
        help=f"(re)write {MANIFEST} and {SIGNATURE} of a run directory",
        description=f"Hash every file of an existing run directory into {MANIFEST} and sign it into {SIGNATURE}.",
    )
    sign.add_argument("dir", metavar="DIR", type=Path, help="the run directory")
    sign.add_argument(
        "--signing-key", metavar="KEY", type=Path, required=True, help="Ed25519 private key (PKCS8 PEM, unencrypted, mode 0600)"
    )
    compare = commands.add_parser(
        "diff",
        help="new, fixed and persisting findings per host between two runs",
        description="Compare two runs' evidence (evidence.json files or run directories), as the quarterly "
        "audit compares a quarter with the previous one: new, fixed and persisting findings per host.",
    )
    compare.add_argument("previous", metavar="PREV_EVIDENCE", type=Path, help="the earlier run's evidence.json or directory")
    compare.add_argument("current", metavar="NEW_EVIDENCE", type=Path, help="the later run's evidence.json or directory")
    compare.add_argument("--json", action="store_true", help="print the diff as JSON (as quarterly-diff.json holds it)")

    combine = commands.add_parser(
        "merge",
        help="combine the run directories of an audit's shards (--shard i/n) into one run directory",
        description="Check each shard's run directory against its manifest (and, with --public-key, its signature), "
        "refuse shards that are not the parts of one audit, and write one new run directory: evidence.json, "
        f"junit.xml, report.html and {MANIFEST} (and {SIGNATURE} with --signing-key). Exit status: 0 merged and "
        "compliant, 1 merged with findings or errors, 2 not merged.",
    )
    combine.add_argument("dirs", metavar="DIR", type=Path, nargs="+", help="the shards' run directories")
    combine.add_argument("--out", metavar="DIR", type=Path, required=True, help="the merged run directory to create")
    combine.add_argument("--signing-key", metavar="KEY", type=Path, help="Ed25519 private key that signs the merged manifest")
    combine.add_argument("--public-key", metavar="PUB", type=Path, help="check each shard's signature against this public key")
    combine.add_argument("--job", metavar="NAME", help="the merged run's job name (default: the shards')")
    combine.add_argument(
        "--no-network",
        action="store_true",
        help="contact nothing: a sharded run's FLT-03 (the public endpoint, checked from the merging machine) is then "
        "an error saying so",
    )
    return parser


def _merge(args: argparse.Namespace) -> int:
    merged = merge_runs(args.dirs, args.out, args.signing_key, args.public_key, args.job, network=not args.no_network)
    signed = ", signed" if merged.signed else ""
    print(
        f"merged: {merged.directory} ({merged.shards} run{'s' * (merged.shards != 1)}, {merged.hosts} hosts, "
        f"{merged.results} results, exit status {merged.exit_status}{signed})"
    )
    return EXIT_OK if merged.exit_status == 0 else EXIT_NOT_VERIFIED


def _diff(args: argparse.Namespace) -> int:
    result = diff(load_run(args.previous), load_run(args.current))
    print(json.dumps(result.as_dict(), indent=1, sort_keys=True) if args.json else "\n".join(render(result, "certaudit diff")))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    result = verify(args.dir, args.public_key)
    for problem in result.problems:
        print(problem)
    if result.ok:
        how = "signature checked" if result.signature_checked else "not signed"
        print(f"verified: {args.dir} ({result.files} file{'s' * (result.files != 1)}, {how})")
        return EXIT_OK
    count = len(result.problems)
    print(f"NOT VERIFIED: {args.dir} ({count} problem{'s' * (count != 1)})")
    return EXIT_NOT_VERIFIED


def _keygen(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir).expanduser()
    name: str = args.name
    if not name or "/" in name or name in (".", ".."):
        raise CertauditError(f"--name {name!r}: expected a file name stem, without '/'")
    try:
        out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise CertauditError(f"{out_dir}: cannot be created: {exc.strerror or type(exc).__name__}") from None
    private_path, public_path = out_dir / f"{name}.pem", out_dir / f"{name}.pub.pem"
    fingerprint = keygen(private_path, public_path)
    print(f"private key: {private_path} (mode 0600: keep it secret, sign with it)")
    print(f"public key:  {public_path} (give it to auditors: certaudit verify DIR --public-key {public_path})")
    print(f"key-sha256:  {fingerprint}")
    return EXIT_OK


def _sign(args: argparse.Namespace) -> int:
    paths = write_manifest(args.dir, args.signing_key)
    print(f"signed: {args.dir} ({len(paths)} file{'s' * (len(paths) != 1)}; wrote {MANIFEST} and {SIGNATURE})")
    return EXIT_OK


def _tolerant_output() -> None:
    """A path with odd characters must not turn a result into a UnicodeEncodeError traceback."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    """Run one certaudit command; return its exit status (argparse's own usage errors are 4 too)."""
    _tolerant_output()
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help and --version (0), usage errors (argparse's 2): argparse has printed them
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    commands = {"verify": _verify, "keygen": _keygen, "sign": _sign, "diff": _diff, "merge": _merge}
    try:
        return commands[args.command](args)
    except CertauditError as exc:
        print(f"certaudit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # every expected one is a CertauditError already; still, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"certaudit: {where}{exc.strerror or type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
