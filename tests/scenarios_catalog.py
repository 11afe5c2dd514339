"""Scenario hosts of the catalog beyond the runbook (KEY-03, CRT-02..04, LIVE-02, MON-01/02, REN-04/05): 127.77.2.x.

Each host differs from a compliant one in the respect its name says. Hosts with a generated
Let's Encrypt lineage run certbot.service once after boot (a real `certbot -q renew`, "not yet
due"), so REN-05 judges a real attempt there as on any host up for a day; the CRT-04 and REN-05
hosts that need a real lineage history get it from real certbot against the fleet's pebble.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from pathlib import Path

from tests.fleet import image
from tests.fleet.pki import LeafSpec
from tests.fleet.scenario import DOMAIN, LE, PEBBLE_CA_PATH, HostFile, Scenario


def _address(n: int) -> str:
    return f"127.77.2.{n}"


# A real renewal attempt, as the timer makes one: `certbot -q renew` finds the certificate not due.
CERTBOT_RUN = "systemctl start certbot.service"
PEBBLE_ENV = f"REQUESTS_CA_BUNDLE={PEBBLE_CA_PATH}"
CONF = f"{LE}/renewal/{DOMAIN}.conf"
# certbot renews the lineage for real but skips renewal-hooks/: the new certificate never reaches
# /etc/stemedb/tls, as when a hook only reloads without installing.
RENEW_WITHOUT_HOOKS = (
    f"{PEBBLE_ENV} certbot renew --force-renewal --cert-name {DOMAIN} --no-directory-hooks --no-random-sleep-on-renew -q"
)
# A second lineage for the same name (`certonly --duplicate`, as a re-run with other options makes
# one): certbot now renews stemedb.example.com-0001 too, while the service reads the first.
DUPLICATE_LINEAGE = (
    f"S=$(sed -n 's/^server = //p' {CONF}) && A=$(sed -n 's/^http01_address = //p' {CONF}) && "
    f'{PEBBLE_ENV} certbot certonly --duplicate --standalone --http-01-address "$A" --http-01-port 5002 '
    f'--server "$S" -d {DOMAIN} --register-unsafely-without-email --agree-tos -n --key-type ecdsa '
    "--no-directory-hooks -q"
)
# A real renewal that fails: certbot cannot verify the ACME server's TLS certificate without the
# fleet's CA bundle. `|| true`: the failure is the point (the after-boot step must not stop).
FAILING_RENEWAL = f"certbot renew --force-renewal --cert-name {DOMAIN} --no-random-sleep-on-renew -q || true"
# certbot.service, renewing a due certificate whose ACME account is gone (the generated lineage
# names an account that was never registered): "Account ... does not exist", Result=exit-code.
FAILING_TIMER_RUN = "systemctl start certbot.service || true"


def _service_env(**values: str) -> HostFile:
    """A drop-in giving the stemedb-api stand-in its scenario knobs (see tests/fleet/files/stemedb_api.py)."""
    lines = "".join(f"Environment={name}={value}\n" for name, value in values.items())
    return HostFile("/etc/systemd/system/stemedb-api.service.d/50-scenario.conf", data=f"[Service]\n{lines}".encode())


# OpenSSL's default security level refuses to serve RSA-1024 or SHA-1; old stacks serve them.
WEAK_CRYPTO_OK = _service_env(STEMEDB_SECLEVEL="0")

# --- Prometheus servers (MON-02) ---------------------------------------------------------------
PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1m
  evaluation_interval: 1m
rule_files:
  - "rules/*.yml"
scrape_configs:
  - job_name: stemedb-api
    scheme: https
    static_configs:
      - targets: ["stemedb.example.com:18180"]
"""
CONFIG_WITHOUT_RULES = "\n".join(line for line in PROMETHEUS_CONFIG.splitlines() if "rule" not in line and "*.yml" not in line)
WARNING_RULE = """\
      - alert: CertificateExpiringWarning
        expr: stemedb_tls_cert_expiry_seconds < (30 * 86400)
        for: 1h
        labels:
          severity: warning
        annotations:
          summary: "TLS certificate expires in 30 days"
"""
SOON_RULE = """\
      - alert: CertificateExpiringSoon
        expr: stemedb_tls_cert_expiry_seconds < (7 * 86400)
        for: 1h
        labels:
          severity: critical
        annotations:
          summary: "TLS certificate expires in 7 days - RENEW NOW"
"""
RULES_HEAD = "groups:\n  - name: stemedb-tls\n    rules:\n"
RUNBOOK_RULES = RULES_HEAD + WARNING_RULE + SOON_RULE
RULES_PATH = "/etc/prometheus/rules/certificates.yml"


def _prometheus(config: str, rules: str, promtool: bool) -> tuple[HostFile, ...]:
    files = [HostFile("/etc/prometheus/prometheus.yml", data=config.encode()), HostFile(RULES_PATH, data=rules.encode())]
    if promtool:
        files.append(HostFile("/usr/bin/promtool", mode=0o755, produce=promtool_binary))
    return tuple(files)


_PROMTOOL_LOCK = threading.Lock()


def promtool_binary() -> bytes:
    """promtool from Debian's prometheus package, fetched once with `apt-get download` and cached.

    Installed on the hosts that need it instead of in the base image, so the image (and every
    fleet running on it) stays as it is; the package itself is never installed anywhere.
    """
    cache = image.cache_root() / "promtool"
    with _PROMTOOL_LOCK:
        for cached in sorted(cache.glob("*/promtool")):
            return cached.read_bytes()
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            download = ["apt-get", "download", "-q", "prometheus"]
            done = subprocess.run(download, cwd=tmp, capture_output=True, text=True, check=False)
            if done.returncode != 0:  # no package lists yet on this machine
                subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
                done = subprocess.run(download, cwd=tmp, capture_output=True, text=True, check=False)
            debs = sorted(Path(tmp).glob("prometheus_*.deb"))
            if done.returncode != 0 or not debs:
                raise RuntimeError(
                    f"promtool for the prometheus scenario hosts: `apt-get download prometheus` failed: {done.stderr}"
                )
            version = debs[0].name.split("_")[1]
            unpack = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE)
            tar = subprocess.run(["tar", "-xO", "./usr/bin/promtool"], stdin=unpack.stdout, capture_output=True, check=False)
            assert unpack.stdout is not None
            unpack.stdout.close()
            if unpack.wait() != 0 or tar.returncode != 0 or not tar.stdout:
                raise RuntimeError(f"promtool for the prometheus scenario hosts: cannot unpack {debs[0].name}: {tar.stderr!r}")
            target = cache / version
            target.mkdir(exist_ok=True)
            partial = target / "promtool.partial"  # renamed once complete: a cut-off copy is never used
            partial.write_bytes(tar.stdout)
            partial.replace(target / "promtool")
            return tar.stdout


# --- the hosts -----------------------------------------------------------------------------------
LIFETIME = {"certaudit_renewal": "custom-ca", "certaudit_threshold_mode": "lifetime"}

SCENARIOS: list[Scenario] = [
    # KEY-03
    Scenario(
        "key-mismatch",
        _address(10),
        "the service's key.pem was replaced by another key after the service started (cert.pem unchanged)",
        after_boot=(
            CERTBOT_RUN,
            "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out /root/other-key.pem && "
            "install -o stemedb -g stemedb -m 0600 /root/other-key.pem /etc/stemedb/tls/key.pem && rm /root/other-key.pem",
        ),
    ),
    Scenario(
        "key-is-certificate",
        _address(11),
        "key.pem holds a copy of the certificate, not a private key",
        after_boot=(CERTBOT_RUN, "install -o stemedb -g stemedb -m 0600 /etc/stemedb/tls/cert.pem /etc/stemedb/tls/key.pem"),
    ),
    # CRT-02
    Scenario(
        "san-other-name",
        _address(20),
        "the certificate names other.example.com only",
        leaf=LeafSpec(san=("other.example.com",)),
        after_boot=(CERTBOT_RUN,),
    ),
    Scenario(
        "not-yet-valid",
        _address(21),
        "the certificate's notBefore is 30 days away (a CA clock ahead)",
        days_left=90,
        lifetime_days=60,
        after_boot=(CERTBOT_RUN,),
    ),
    Scenario(
        "rsa-1024",
        _address(22),
        "an RSA 1024-bit key",
        leaf=LeafSpec(key="rsa-1024"),
        files=(WEAK_CRYPTO_OK,),
        after_boot=(CERTBOT_RUN,),
    ),
    Scenario(
        "sha1-signed",
        _address(23),
        "an RSA 2048 certificate signed with SHA-1",
        leaf=LeafSpec(key="rsa-2048", signature_hash="sha1"),
        files=(WEAK_CRYPTO_OK,),
        after_boot=(CERTBOT_RUN,),
    ),
    # CRT-03
    Scenario(
        "chain-leaf-only",
        _address(30),
        "issued through an intermediate, but the service serves the leaf alone (cert.pem, not fullchain.pem)",
        leaf=LeafSpec(intermediate_days_left=3650),
        tls_cert_chain=False,
        after_boot=(CERTBOT_RUN,),
    ),
    Scenario(
        "chain-untrusted",
        _address(31),
        "issued by a CA that is in no trust store",
        ca="untrusted",
        after_boot=(CERTBOT_RUN,),
    ),
    Scenario(
        "chain-intermediate-first",
        _address(32),
        "the intermediate expires in 20 days, the leaf in 60",
        leaf=LeafSpec(intermediate_days_left=20),
        after_boot=(CERTBOT_RUN,),
    ),
    # CRT-04
    Scenario(
        "lineage-stale-copy",
        _address(40),
        "certbot renewed the lineage, but the renewal never reached /etc/stemedb/tls",
        cert_source="pebble",
        after_boot=(RENEW_WITHOUT_HOOKS,),
    ),
    Scenario(
        "lineage-orphan",
        _address(41),
        "a second lineage stemedb.example.com-0001 is renewed while the service reads the first",
        cert_source="pebble",
        after_boot=(DUPLICATE_LINEAGE,),
    ),
    # LIVE-02
    Scenario(
        "reloaded-after-change",
        _address(50),
        "the certificate was replaced after the service started, then the service reloaded",
        serve_stale=True,
        after_boot=(CERTBOT_RUN, "systemctl reload stemedb-api"),
    ),
    Scenario(
        "restarted-after-change",
        _address(51),
        "the certificate was replaced after the service started, then the service restarted",
        serve_stale=True,
        after_boot=(CERTBOT_RUN, "systemctl restart stemedb-api"),
    ),
    # MON-01
    Scenario(
        "metrics-missing",
        _address(60),
        "/metrics exports no stemedb_tls_cert_expiry_seconds",
        files=(_service_env(STEMEDB_METRICS="none"),),
        after_boot=(CERTBOT_RUN,),
    ),
    Scenario(
        "metrics-in-days",
        _address(61),
        "/metrics exports the expiry in days, not seconds",
        files=(_service_env(STEMEDB_METRICS="days"),),
        after_boot=(CERTBOT_RUN,),
    ),
    Scenario(
        "metrics-other-domain",
        _address(62),
        '/metrics labels the expiry domain="api.example.com"',
        files=(_service_env(STEMEDB_METRICS_DOMAIN="api.example.com"),),
        after_boot=(CERTBOT_RUN,),
    ),
    # MON-02 (the integration test puts these in the inventory's prometheus group)
    Scenario(
        "prom-rules",
        _address(70),
        "Prometheus loads the runbook's two alerts; promtool is installed",
        files=_prometheus(PROMETHEUS_CONFIG, RUNBOOK_RULES, promtool=True),
        after_boot=(CERTBOT_RUN,),
    ),
    Scenario(
        "prom-soon-missing",
        _address(71),
        "Prometheus loads CertificateExpiringWarning only; no promtool",
        files=_prometheus(PROMETHEUS_CONFIG, RULES_HEAD + WARNING_RULE, promtool=False),
        after_boot=(CERTBOT_RUN,),
    ),
    Scenario(
        "prom-hours-bug",
        _address(72),
        "CertificateExpiringSoon fires under 7 * 3600 (7 hours); promtool is installed",
        files=_prometheus(PROMETHEUS_CONFIG, RUNBOOK_RULES.replace("(7 * 86400)", "(7 * 3600)"), promtool=True),
        after_boot=(CERTBOT_RUN,),
    ),
    Scenario(
        "prom-rules-not-loaded",
        _address(73),
        "the runbook's rules are on disk, but prometheus.yml lists no rule_files; no promtool",
        files=_prometheus(CONFIG_WITHOUT_RULES, RUNBOOK_RULES, promtool=False),
        after_boot=(CERTBOT_RUN,),
    ),
    # REN-04 (and CRT-01 by share of lifetime): a private CA issuing short-lived certificates
    Scenario(
        "short-lived-days",
        _address(80),
        "a 6-day certificate with 4 days left, judged in days (certaudit_threshold_mode: days forced)",
        days_left=4,
        lifetime_days=6,
        inventory_vars={"certaudit_renewal": "custom-ca", "certaudit_threshold_mode": "days"},
        ca="custom",
        lineage=False,
        hook=None,
        timer="disabled",
    ),
    Scenario(
        "short-lived-lifetime",
        _address(81),
        "a 6-day certificate with 4 days left, judged by share of lifetime",
        days_left=4,
        lifetime_days=6,
        inventory_vars=dict(LIFETIME),
        ca="custom",
        lineage=False,
        hook=None,
        timer="disabled",
    ),
    Scenario(
        "lifetime-warning",
        _address(82),
        "a 45-day certificate with 10 days left (22% of its lifetime), judged by share of lifetime",
        days_left=10,
        lifetime_days=45,
        inventory_vars=dict(LIFETIME),
        ca="custom",
        lineage=False,
        hook=None,
        timer="disabled",
    ),
    # REN-05
    Scenario(
        "renewal-failing",
        _address(90),
        "20 days left; the timer's certbot run fails (the lineage's ACME account is gone)",
        days_left=20,
        after_boot=(FAILING_TIMER_RUN,),
    ),
    Scenario(
        "renewal-failed-log",
        _address(91),
        "pebble host whose last certbot renew run (by hand, logged only) failed",
        cert_source="pebble",
        after_boot=(FAILING_RENEWAL,),
    ),
]

PROMETHEUS_HOSTS = ("prom-rules", "prom-soon-missing", "prom-hours-bug", "prom-rules-not-loaded")
