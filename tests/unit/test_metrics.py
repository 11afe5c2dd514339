"""The Prometheus text format as /metrics serves it: samples kept, every malformed line named."""

from __future__ import annotations

import math

import pytest

from certaudit.host.metrics import MetricsError, Sample, number, parse_metrics

PAGE = """\
# HELP stemedb_tls_cert_expiry_seconds Seconds until the served certificate expires.
# TYPE stemedb_tls_cert_expiry_seconds gauge
stemedb_tls_cert_expiry_seconds{domain="stemedb.example.com"} 2592000
stemedb_tls_cert_expiry_seconds{domain="api.example.com",instance="a:1"} 1.5e6 1700000000000

process_open_fds 12
escaped{path="C:\\\\tls\\"x\\"\\n",} +Inf
nan_metric NaN
"""


def test_samples_with_labels_values_and_timestamps() -> None:
    samples = parse_metrics(PAGE)
    assert [s.name for s in samples] == [
        "stemedb_tls_cert_expiry_seconds",
        "stemedb_tls_cert_expiry_seconds",
        "process_open_fds",
        "escaped",
        "nan_metric",
    ]
    first, second, fds, escaped, nan = samples
    assert first == Sample("stemedb_tls_cert_expiry_seconds", (("domain", "stemedb.example.com"),), 2592000.0, None, 3)
    assert second.label("instance") == "a:1" and second.value == 1.5e6 and second.timestamp_ms == 1700000000000
    assert fds.labels == () and fds.value == 12
    assert escaped.label("path") == 'C:\\tls"x"\n' and math.isinf(escaped.value)
    assert math.isnan(nan.value)
    assert first.text() == 'stemedb_tls_cert_expiry_seconds{domain="stemedb.example.com"} 2592000'
    assert number(1.5e6) == "1500000" and number(0.25) == "0.25"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("9bad 1", "expected a metric name"),
        ("m{domain=stemedb} 1", "expected a quoted value for label domain"),
        ('m{domain="x} 1', "unterminated value of label domain"),
        ('m{domain="x\\q"} 1', "bad escape in the value of label domain"),
        ('m{a="1",a="2"} 1', "label a given twice"),
        ('m{a="1" b="2"} 1', "expected ',' or '}' after a label"),
        ('m{1a="x"} 1', "expected a label name or '}'"),
        ("m", "expected a value and at most a timestamp"),
        ("m 1 2 3", "expected a value and at most a timestamp"),
        ("m twelve", "the value is not a number"),
        ("m 1_000", "the value is not a number"),
        ("m 1 1.5", "the timestamp is not whole milliseconds"),
        ('m{a="1"}1', "expected a space before the value"),
    ],
)
def test_malformed_lines_are_named(line: str, says: str) -> None:
    with pytest.raises(MetricsError, match="^line 2: " + says.replace("{", "\\{").replace("}", "\\}")):
        parse_metrics("ok 1\n" + line + "\n")


def test_long_lines_are_cut_in_messages() -> None:
    with pytest.raises(MetricsError) as caught:
        parse_metrics("m " + "x" * 500)
    assert len(str(caught.value)) < 200
