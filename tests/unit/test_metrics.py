"""The Prometheus text format as /metrics serves it: samples kept, every malformed line named."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from prometheus_client.parser import text_string_to_metric_families

from certaudit.host.metrics import MAX_LINE_CHARS, MAX_PAGE_CHARS, MetricsError, MetricsUnread, Sample, number, parse_metrics
from tests.unit.test_properties_parsers import metric_pages

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
        ("9bad 1", "prometheus_client rejects it (invalid metric name)"),
        ("m{domain=stemedb} 1", "prometheus_client rejects it (Invalid labels)"),
        ('m{domain="x} 1', "prometheus_client rejects it (could not convert string to float)"),
        ('m{a="1",a="2"} 1', "prometheus_client rejects it (Invalid labels)"),
        ('m{a="1" b="2"} 1', "prometheus_client rejects it (Invalid labels)"),
        ('m{1a="x"} 1', "prometheus_client rejects it (Invalid labels)"),
        ("m", "prometheus_client rejects it (invalid metric name)"),
        ("m twelve", "prometheus_client rejects it (could not convert string to float)"),
        ("m 1_000", "prometheus_client rejects it (Invalid value)"),
        ("m 0x10", "prometheus_client rejects it (could not convert string to float)"),
        ("# TYPE m", "prometheus_client rejects it"),
    ],
)
def test_malformed_lines_are_named(line: str, says: str) -> None:
    with pytest.raises(MetricsError) as caught:
        parse_metrics("ok 1\n" + line + "\n")
    assert str(caught.value) == f"line 2: {says}: {line!r}"


@pytest.mark.parametrize(
    ("line", "sample"),
    [
        # The old hand parser rejected these; prometheus_client's parser ("laxer than the main Go
        # parser", its docstring says) reads them, and MON-01 now judges their value.
        ('m{domain="x\\q"} 1', Sample("m", (("domain", "x\\q"),), 1.0, None, 2)),  # unknown escape kept
        ("m 1 2 3", Sample("m", (), 1.0, 3.0, 2)),  # the last field is the timestamp
        ("m 1 1.5", Sample("m", (), 1.0, 1.5, 2)),  # a fractional timestamp
        ('m{a="1"}1', Sample("m", (("a", "1"),), 1.0, None, 2)),  # no blank before the value
    ],
)
def test_lines_prometheus_client_reads_though_prometheus_would_not(line: str, sample: Sample) -> None:
    assert parse_metrics("ok 1\n" + line + "\n")[1:] == [sample]


def test_a_counter_sample_keeps_the_name_it_was_written_with() -> None:
    """In a whole page the parser renames a counter's samples to x_total; line by line it does not."""
    page = "# TYPE stemedb_tls_cert_expiry_seconds counter\nstemedb_tls_cert_expiry_seconds 5\n"
    assert [s.name for s in parse_metrics(page)] == ["stemedb_tls_cert_expiry_seconds"]


def test_a_page_is_bounded_before_it_is_parsed() -> None:
    with pytest.raises(MetricsUnread, match=f"^over {MAX_PAGE_CHARS} characters: not parsed$"):
        parse_metrics("#" * (MAX_PAGE_CHARS + 1))
    with pytest.raises(MetricsUnread, match=f"^line 2: over {MAX_LINE_CHARS} characters: not parsed$"):
        parse_metrics('ok 1\nm{a="' + '\\"' * MAX_LINE_CHARS + '"} 1\n')


def test_long_lines_are_cut_in_messages() -> None:
    with pytest.raises(MetricsError) as caught:
        parse_metrics("m " + "x" * 500)
    assert len(str(caught.value)) < 200


def _whole_page_rejects(text: str) -> bool:
    try:
        list(text_string_to_metric_families(text))
    except (ValueError, IndexError, KeyError, TypeError):
        return True
    return False


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(metric_pages)
def test_the_parser_rejects_a_page_exactly_when_it_rejects_one_of_its_lines(text: str) -> None:
    """parse_metrics hands prometheus_client one line at a time; this is the proof that it rejects
    the same pages as when handed the whole page (its rules are per line), on the property
    tests' pages."""
    try:
        parse_metrics(text)
    except MetricsUnread:
        return
    except MetricsError:
        assert _whole_page_rejects(text)
    else:
        assert not _whole_page_rejects(text)


@pytest.mark.parametrize(
    ("line", "name", "value"),
    [
        # found by the differential run against the old hand parser: a line with no blank is read
        # as a name of all but its last character and a value of the whole line
        ("NaN", "Na", math.nan),
        ("Infinity", "Infinit", math.inf),
    ],
)
def test_a_line_without_a_blank_reads_as_prometheus_client_reads_it(line: str, name: str, value: float) -> None:
    (sample,) = parse_metrics(line)
    assert sample.name == name and (sample.value == value or (math.isnan(sample.value) and math.isnan(value)))


def test_an_unknown_metric_type_is_named_on_its_own_line() -> None:
    with pytest.raises(MetricsError) as caught:
        parse_metrics("ok 1\n# TYPE x gauges\nx 1\n")
    assert str(caught.value) == "line 2: prometheus_client rejects it (Invalid metric type): '# TYPE x gauges'"
