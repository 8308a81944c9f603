# sensorbox: two commands on a fresh machine.
#   make run    set everything up, start a simulated device (web on http://127.0.0.1:$(PORT))
#   make test   set up what the tests need, run the whole suite
#   make proof  the proof suite at full size (SENSORBOX_PROOF=full)
# Also: make bench (benchmarks), make bundle (device bundle under build/), make clean.

PYTHON ?= python3
PORT   ?= 8080
DATA   ?= ./var
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test proof bench bundle clean system-deps node-deps

$(STAMP): pyproject.toml
	@scripts/ensure-system-packages $(PYTHON)
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || scripts/ensure-system-packages --install python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	@scripts/ensure-system-packages node:nodejs npm
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

bundle: $(STAMP) node_modules/.installed
	$(BIN)/sensorbox build

run: $(STAMP) node_modules/.installed
	$(BIN)/sensorbox run --port $(PORT) --data $(DATA)

test: $(STAMP) node_modules/.installed
	@scripts/ensure-system-packages /usr/sbin/mosquitto:mosquitto openssl
	@scripts/ensure-system-packages /usr/bin/chromium:chromium
	@scripts/ensure-system-packages socat
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The proof suite at full size (issue 11: kill -9, power cuts, corrupt files, requests, bursts); make test runs
# it at a short size. Tests marked `proof`, with their figures printed.
proof: $(STAMP) node_modules/.installed
	@scripts/ensure-system-packages /usr/sbin/mosquitto:mosquitto openssl
	@scripts/ensure-system-packages /usr/bin/chromium:chromium
	@scripts/ensure-system-packages socat
	SENSORBOX_PROOF=full $(BIN)/python -m pytest -q -s -m proof $(PYTEST_ARGS)

bench: $(STAMP) node_modules/.installed
	@scripts/ensure-system-packages /usr/sbin/mosquitto:mosquitto
	@scripts/ensure-system-packages /usr/bin/chromium:chromium
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf build .pytest_cache test-artifacts
