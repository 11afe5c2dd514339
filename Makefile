# certaudit: two commands on a fresh Debian machine.
#   make audit   every control against the default inventory, evidence under reports/
#   make test    the suite's own tests, against a fleet of real test hosts (root)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INVENTORY ?= inventories/local.yml
JOB ?= audit
REPORTS ?= reports
PYTEST_ARGS ?=
# Directories of your own controls, run beside checks/ on the same hosts (README: Write your own control).
EXTRA_CHECKS ?=
BENCH_ARGS ?=
# The quarterly audit drills a real renewal on the hosts whose inventory allows it (certaudit_drill_ok: true).
QUARTERLY_ARGS ?= --renewal-drill
DEBIAN_TEST_PACKAGES := systemd-container debootstrap pebble openssh-client chromium coreutils haproxy

.PHONY: audit gate quarterly test lint venv test-venv debian-test-packages bench clean

$(BIN)/.certaudit-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.certaudit-test-installed: $(BIN)/.certaudit-installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.certaudit-installed

test-venv: $(BIN)/.certaudit-test-installed

## Audit every host of $(INVENTORY); exit status of pytest: 0 compliant, 1 findings (make itself then exits 2).
audit: venv
	$(BIN)/pytest checks $(EXTRA_CHECKS) --inventory $(INVENTORY) --report-dir $(REPORTS) --job $(JOB) $(PYTEST_ARGS)

## Pre-deploy gate: the gate controls only, one line per host; exit 0 lets the deploy go (make exits 2 when it blocks).
## It writes no report, so pytest-html and xdist stay unloaded: their imports were a fifth of its start.
## Each plugin by every name it registers: `no:html` leaves pytest-html's html_fixtures (and with it
## the pytest_html package), `no:xdist` leaves xdist.looponfail (xdist and execnet), and pytest-metadata
## serves pytest-html's report only.
GATE_PLUGINS ?= -p no:html -p no:html_fixtures -p no:metadata -p no:xdist -p no:xdist.looponfail
gate: venv
	$(BIN)/pytest checks $(EXTRA_CHECKS) --inventory $(INVENTORY) --gate --job gate -q --no-header --tb=no -rN $(GATE_PLUGINS) $(PYTEST_ARGS)

## Quarterly audit: every control plus the renewal drill, under $(REPORTS)/<YYYY>-Q<n>/, signed with
## $$CERTAUDIT_SIGNING_KEY (or --signing-key in PYTEST_ARGS), with the diff against the previous quarter.
quarterly: venv
	$(BIN)/pytest checks $(EXTRA_CHECKS) --inventory $(INVENTORY) --report-dir $(REPORTS) --job quarterly --quarterly $(QUARTERLY_ARGS) $(PYTEST_ARGS)

debian-test-packages:
	@missing=$$(for p in $(DEBIAN_TEST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	fi

lint: test-venv
	$(BIN)/ruff check .
	$(BIN)/mypy

## The suite's own tests: unit tests, then the fleet of real hosts (builds and caches their base image).
test: test-venv debian-test-packages lint
	$(BIN)/pytest tests $(PYTEST_ARGS)

## Benchmarks (on demand, root, about 30 minutes; bench/README.md): fleets of 10, 50 and 100 hosts against
## the testinfra baseline, on loopback and behind 20 ms a packet; BENCH_ARGS e.g. --modes loopback --sizes 10.
bench: DEBIAN_TEST_PACKAGES += iproute2 iptables
bench: test-venv debian-test-packages
	CERTAUDIT_FLEET_ID=$${CERTAUDIT_FLEET_ID:-5} $(BIN)/python -m bench.bench_fleet $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
