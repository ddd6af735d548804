# Two commands for a newcomer: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench soak clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# Debian packages the tests use: libfaketime steps the wall clock in the fault campaign;
# postgresql gives initdb and pg_ctl, with which the tests start a server of their own
# (tests/pg_fixtures.py: the package's own cluster is not used); chromium and chromium-driver
# are the headless browser the web console's tests drive (tests/ui_fixtures.py).
SYSTEM_PACKAGES = faketime postgresql chromium chromium-driver
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(VENV)/.system-packages: Makefile
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; }
	@mkdir -p $(VENV) && touch $@

demo: $(BIN)/.installed
	$(BIN)/python -m demo

# One pytest worker per core (pytest-xdist): most of a test's time is a process, a socket or
# a simulated call waiting, so two run side by side in about the time of one.
TEST_WORKERS ?= auto

test: $(BIN)/.installed $(VENV)/.system-packages
	$(BIN)/pytest -n $(TEST_WORKERS)

# One dialect (ruff format + ruff check, settings in pyproject.toml) and types on the product.
lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every benchmark in turn (about 10 minutes on 2 cores); each prints its own figures.
BENCHES = import_bench queue_bench simulator_bench throughput_bench latency_bench memory_bench keepalive_bench reads_bench

bench: $(BIN)/.installed
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; done

# The long fault campaign (docs/faults.md): 50 rounds per seed on SQLite, about 4 minutes each,
# then 50 on PostgreSQL with three nodes and two API processes, about 8 minutes.
soak: $(BIN)/.installed $(VENV)/.system-packages
	$(BIN)/python -m tests.soak.campaign --rounds 50 --seed 1
	$(BIN)/python -m tests.soak.campaign --rounds 50 --seed 2
	$(BIN)/python -m tests.soak.campaign --rounds 50 --seed 1 --backend postgresql --nodes 3 --apis 2

clean:
	rm -rf $(VENV) var .pytest_cache
