"""The board test doubles (tests/support/board) against MicroPython's published ESP32 API, PyPI's
``micropython-esp32-esp32-generic-stubs`` (generated from the firmware): every class, function and constant a
double has exists in the stub with the same value, every call the stub allows binds to the double's signature and
the double takes no parameter the stub does not have. And the device code that talks to the board
(``platform/esp32.py``, ``net/``) type-checks with mypy against the stubs, so a call the firmware would refuse
fails here."""

import ast
import os

import pytest

from esp32_stubs import REPO, check, defs, mypy, stub, stub_dir

DOUBLES = os.path.join(REPO, "tests", "support", "board")
MODULES = ("network", "machine", "esp32")
# What a double may have that is not the firmware's: its own helpers start with "_"; these are for the tests
# (documented in each double) and never used by device code (checked below).
TEST_ONLY = {"network": {"log", "scans", "mdns_hostname"}, "machine": {"fed", "last_feed", "power_cycle"},
             "esp32": {"boot", "running", "rollback_enabled"}}


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    return stub_dir(tmp_path_factory.mktemp("stubs"))


@pytest.mark.parametrize("module", MODULES)
def test_double_follows_the_stub(stubs, module):
    double = defs(ast.parse(open(os.path.join(DOUBLES, module + ".py")).read()).body)
    problems = check(double, stub(stubs, module), module, TEST_ONLY[module])
    assert problems == [], "\n".join(problems)


def test_the_check_can_fail(stubs):
    bad = defs(ast.parse("class WDT:\n    def __init__(self, timeout_ms=0):\n        pass\n"
                         "    def feed(self, n):\n        pass\nPWRON_RESET = 7\ndef frobnicate():\n    pass\n").body)
    problems = "\n".join(check(bad, stub(stubs, "machine"), "machine"))
    assert "WDT.__init__" in problems and "timeout_ms" in problems and "WDT.feed" in problems
    assert "PWRON_RESET = 7" in problems and "frobnicate: not in the stub" in problems


def test_device_code_uses_no_test_only_name():
    for root, _, files in os.walk(os.path.join(REPO, "sensorbox", "device")):
        for f in files:
            if f.endswith(".py"):
                src = open(os.path.join(root, f)).read()
                for mod, names in TEST_ONLY.items():
                    for n in names:
                        assert "{}.{}".format(mod, n) not in src, (f, mod, n)


BOARD_CODE = ["sensorbox/device/platform/esp32.py", "sensorbox/device/net/station.py",
              "sensorbox/device/net/portal.py", "sensorbox/device/bootstate.py"]


def test_board_code_type_checks_against_the_stubs(stubs, tmp_path):
    errors = mypy(stubs, BOARD_CODE)
    assert errors == [], "\n".join(errors)
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import network, machine\n"
                     "    network.WLAN(network.STA_IF).connect(ssid='x', key='y')\n"
                     "    machine.WDT(timeout_ms=1).feed(1)\n")
    bad = mypy(stubs, [str(probe)])  # the firmware takes ssid and key positionally, WDT(timeout=...) and feed()
    assert len(bad) == 4 and "ssid" in bad[0] and "timeout_ms" in bad[2] and "feed" in bad[3], bad
