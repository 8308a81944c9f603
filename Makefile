# sensorbox: two commands on a fresh machine.
#   make run    set everything up, start a simulated device (web on http://127.0.0.1:$(PORT))
#   make test   set up what the tests need, ruff check, run the whole suite
#   make test-fast  the suite without browser, end-to-end, slow and proof tests (a developer's loop; docs/testing.md)
#   make config-docs  regenerate docs/configuration.md from the config schema (a test fails while it is stale)
#   make proof  the proof suite at full size (SENSORBOX_PROOF=full)
#   make test-ha  the device in a real Home Assistant core (tests marked `ha`; make test leaves them out: the
#                 install is ~800 MB and ~10 minutes on a fresh clone)
# Also: make bench (benchmarks), make bundle (device bundle under build/), make clean.

PYTHON ?= python3
PORT   ?= 8080
DATA   ?= ./var
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint config-docs proof test-ha ha-deps bench bundle clean system-deps node-deps

# Real recordings for the sound features and classifiers (Debian packages; licences in docs/sounds.md):
# keyboard clicks (GPL-2+) and speech (BSD-2).
SOUND_DATA := /usr/share/buckle/wav/01-0.wav:bucklespring-data \
              /usr/share/pocketsphinx/test/data/cards/001.wav:pocketsphinx-testdata

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

# Home Assistant core from PyPI in its own Python 3.13 venv (.venv-ha; tests/host/ha_core.py): the MQTT discovery
# tests check the device against its schemas, test_ha_core.py runs it. Installs once (~800 MB), then a no-op.
ha-deps: $(STAMP)
	@$(BIN)/python tests/host/ha_core.py

bundle: $(STAMP) node_modules/.installed
	$(BIN)/sensorbox build

run: $(STAMP) node_modules/.installed
	$(BIN)/sensorbox run --port $(PORT) --data $(DATA)

# Test workers (pytest-xdist; docs/testing.md): the suite mostly waits on devices, brokers and browsers, so more
# workers than cores pay; TEST_JOBS=0 runs it in one process.
TEST_JOBS ?= 3

# ruff's checks (pyproject.toml: faults, not style; nothing is reformatted)
lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) node_modules/.installed lint
	@scripts/ensure-system-packages /usr/sbin/mosquitto:mosquitto openssl
	@scripts/ensure-system-packages /usr/bin/chromium:chromium
	@scripts/ensure-system-packages socat
	@scripts/ensure-system-packages $(SOUND_DATA)
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) -m "not ha" $(PYTEST_ARGS)

# Everything but the tests marked browser, e2e, slow, proof (and ha): device, shared and host unit tests
test-fast: $(STAMP) node_modules/.installed lint
	@scripts/ensure-system-packages /usr/sbin/mosquitto:mosquitto openssl
	@scripts/ensure-system-packages socat
	@scripts/ensure-system-packages $(SOUND_DATA)
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) -m "not ha and not browser and not e2e and not slow and not proof" $(PYTEST_ARGS)

config-docs: $(STAMP)
	$(BIN)/python -m sensorbox.host.configref

# The proof suite at full size (issue 11: kill -9, power cuts, corrupt files, requests, bursts); make test runs
# it at a short size. Tests marked `proof`, with their figures printed.
proof: $(STAMP) node_modules/.installed ha-deps
	@scripts/ensure-system-packages /usr/sbin/mosquitto:mosquitto openssl
	@scripts/ensure-system-packages /usr/bin/chromium:chromium
	@scripts/ensure-system-packages socat
	@scripts/ensure-system-packages $(SOUND_DATA)
	SENSORBOX_PROOF=full $(BIN)/python -m pytest -q -s -m proof $(PYTEST_ARGS)

bench: $(STAMP) node_modules/.installed
	@scripts/ensure-system-packages /usr/sbin/mosquitto:mosquitto
	@scripts/ensure-system-packages /usr/bin/chromium:chromium
	@scripts/ensure-system-packages $(SOUND_DATA)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf build .pytest_cache test-artifacts

# The Home Assistant tests (issue 19) at full size: entities, controls, device kill, broker restart, model change.
test-ha: $(STAMP) ha-deps
	@scripts/ensure-system-packages /usr/sbin/mosquitto:mosquitto
	SENSORBOX_PROOF=full $(BIN)/python -m pytest -q -s -m ha $(PYTEST_ARGS)
