# The two commands: `make demo` and `make test`. Each installs what it needs into .venv
# on a fresh machine that has only python3, pip and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test install bench clean chromium postgresql

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/panen demo --out out/demo --force

test: $(STAMP) chromium postgresql
	$(PY) -m pytest -q

# The report test renders report.html in headless Chromium; install Debian's package when
# we can (root with apt-get), otherwise that test is skipped.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the report rendering test will be skipped"; }

# The settlement store's tests start a throwaway PostgreSQL server (tests/pgserver.py); install
# Debian's package when we can (root with apt-get), otherwise those tests are skipped.
postgresql:
	@{ command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; } || { [ "$$(id -u)" = 0 ] \
	  && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	  || echo "postgresql not installed: the settlement store's PostgreSQL tests will be skipped"; }

bench: $(STAMP)
	$(PY) benchmarks/zonal.py
	$(PY) benchmarks/ledger.py
	$(PY) benchmarks/backtest.py
	$(PY) benchmarks/run.py
	$(PY) benchmarks/store.py
	$(PY) benchmarks/settlement.py

clean:
	rm -rf out demo_data .pytest_cache
