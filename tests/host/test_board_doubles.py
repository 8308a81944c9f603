"""The board test doubles (tests/support/board) against MicroPython's published ESP32 API, PyPI's
``micropython-esp32-esp32-generic-stubs`` (generated from the firmware): every class, function and constant a
double has exists in the stub with the same value, every call the stub allows binds to the double's signature and
the double takes no parameter the stub does not have. And the device code that talks to the board
(``platform/esp32.py``, ``net/``) type-checks with mypy against the stubs, so a call the firmware would refuse
fails here."""

import ast
import importlib.metadata
import inspect
import os
import shutil
import subprocess
import sys

import pytest

from sensorbox.host import bundle

REPO = bundle.REPO
STUBS = "micropython-esp32-esp32-generic-stubs"
DOUBLES = os.path.join(REPO, "tests", "support", "board")
MODULES = ("network", "machine", "esp32")
# What a double may have that is not the firmware's: its own helpers start with "_"; these are for the tests
# (documented in each double) and never used by device code (checked below).
TEST_ONLY = {"network": {"log", "scans", "mdns_hostname"}, "machine": {"fed", "last_feed", "power_cycle"},
             "esp32": {"boot", "running", "rollback_enabled"}}


def _stub_dir(tmp):
    dist = importlib.metadata.distribution(STUBS)
    site = str(dist.locate_file(""))
    out = os.path.join(str(tmp), "stubs")
    if not os.path.isdir(out):
        for f in dist.files:
            if str(f).endswith(".pyi"):
                dst = os.path.join(out, str(f))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy(os.path.join(site, str(f)), dst)
        shutil.copytree(os.path.join(site, "_mpy_shed"), os.path.join(out, "_mpy_shed"))
    return site, out


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    return _stub_dir(tmp_path_factory.mktemp("stubs"))


def _signature(fn, method):
    a = fn.args
    params = []
    pos = a.posonlyargs + a.args
    defaults = [None] * (len(pos) - len(a.defaults)) + list(a.defaults)
    for i, (arg, d) in enumerate(zip(pos, defaults)):
        if method and i == 0 and not any(isinstance(x, ast.Name) and x.id == "staticmethod"
                                         for x in fn.decorator_list):
            continue  # self / cls
        kind = inspect.Parameter.POSITIONAL_ONLY if arg in a.posonlyargs else inspect.Parameter.POSITIONAL_OR_KEYWORD
        params.append(inspect.Parameter(arg.arg, kind, default=inspect.Parameter.empty if d is None else 0))
    if a.vararg:
        params.append(inspect.Parameter(a.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        params.append(inspect.Parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY,
                                        default=inspect.Parameter.empty if d is None else 0))
    if a.kwarg:
        params.append(inspect.Parameter(a.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(params)


def _defs(body, method=False):
    """{name: [signatures (one per overload)] or ("const", value)} of a module's or class's body."""
    out = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.setdefault(node.name, []).append(_signature(node, method))
        elif isinstance(node, ast.ClassDef):
            out[node.name] = ("class", _defs(node.body, True))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    try:
                        out[t.id] = ("const", ast.literal_eval(node.value)) if node.value is not None else ("const", None)
                    except ValueError:
                        out[t.id] = ("const", None)
    return out


def _calls(sig):
    """Calls the stub's signature allows: required arguments only, and every argument (positional where it
    must be, by keyword where it must be), as (args, kwargs)."""
    out = []
    for full in (False, True):
        args, kw = [], {}
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.default is not p.empty and not full:
                continue
            if p.kind == p.KEYWORD_ONLY:
                kw[p.name] = 0
            else:
                args.append(0)
        out.append((args, kw))
    return out


def _check(double, stub, where):
    problems = []
    for name, d in double.items():
        if name.startswith("_") and name not in ("__init__", "__call__"):
            continue
        if name in TEST_ONLY.get(where, ()):
            continue
        s = stub.get(name)
        if s is None:
            problems.append("{}.{}: not in the stub".format(where, name))
            continue
        if isinstance(d, tuple) and d[0] == "const":
            if isinstance(s, tuple) and s[0] == "const" and s[1] is not None and d[1] != s[1]:
                problems.append("{}.{} = {!r}, the stub says {!r}".format(where, name, d[1], s[1]))
            continue
        if isinstance(d, tuple) and d[0] == "class":
            if not (isinstance(s, tuple) and s[0] == "class"):
                problems.append("{}.{}: a class here, not in the stub".format(where, name))
            else:
                problems += _check(d[1], s[1], where + "." + name)
            continue
        if not isinstance(s, list):
            problems.append("{}.{}: a function here, not in the stub".format(where, name))
            continue
        sig = d[0]
        names = set()
        for ov in s:
            names |= {p.name for p in ov.parameters.values()}
            for args, kw in _calls(ov):
                try:
                    sig.bind(*args, **kw)
                except TypeError as e:
                    problems.append("{}.{}{}: the stub allows {}({}) but the double says {}".format(
                        where, name, sig, name, ", ".join(["0"] * len(args) + ["{}=0".format(k) for k in kw]), e))
        npos = max(len([p for p in ov.parameters.values() if p.kind != p.KEYWORD_ONLY]) for ov in s)
        for i, p in enumerate(sig.parameters.values()):
            if p.name.startswith("_") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            positional_ok = p.kind != p.KEYWORD_ONLY and i < npos
            if p.name not in names and not positional_ok and not any(
                    x.kind in (x.VAR_KEYWORD,) for ov in s for x in ov.parameters.values()):
                problems.append("{}.{}: parameter {} is not in the stub".format(where, name, p.name))
    return problems


@pytest.mark.parametrize("module", MODULES)
def test_double_follows_the_stub(stubs, module):
    site, out = stubs
    stub = _defs(ast.parse(open(os.path.join(out, module + ".pyi")).read()).body)
    double = _defs(ast.parse(open(os.path.join(DOUBLES, module + ".py")).read()).body)
    problems = _check(double, stub, module)
    assert problems == [], "\n".join(problems)


def test_the_check_can_fail(stubs):
    site, out = stubs
    stub = _defs(ast.parse(open(os.path.join(out, "machine.pyi")).read()).body)
    bad = _defs(ast.parse("class WDT:\n    def __init__(self, timeout_ms=0):\n        pass\n"
                          "    def feed(self, n):\n        pass\nPWRON_RESET = 7\ndef frobnicate():\n    pass\n").body)
    problems = "\n".join(_check(bad, stub, "machine"))
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


def _mypy(tmp, paths):
    site, stubs = tmp
    res = subprocess.run([sys.executable, "-m", "mypy", "--custom-typeshed-dir", site, "--check-untyped-defs",
                          "--follow-imports=skip", "--no-error-summary",
                          # (about the board's API: not the annotations of containers, nor attributes set later)
                          "--disable-error-code=var-annotated", "--disable-error-code=union-attr", "--cache-dir",
                          os.path.join(os.path.dirname(stubs), "c")] + paths,
                         env=dict(os.environ, MYPYPATH=stubs), capture_output=True, text=True, cwd=REPO)
    return [line for line in res.stdout.splitlines() if any(line.startswith(p + ":") for p in paths)
            and ": error:" in line]


BOARD_CODE = ["sensorbox/device/platform/esp32.py", "sensorbox/device/net/station.py",
              "sensorbox/device/net/portal.py", "sensorbox/device/net/ntp.py"]


def test_board_code_type_checks_against_the_stubs(stubs, tmp_path):
    errors = _mypy(stubs, BOARD_CODE)
    assert errors == [], "\n".join(errors)
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import network, machine\n"
                     "    network.WLAN(network.STA_IF).connect(ssid='x', key='y')\n    machine.WDT(timeout_ms=1)\n")
    bad = _mypy(stubs, [str(probe)])  # the firmware takes ssid and key positionally, and WDT(timeout=...)
    assert len(bad) == 3 and "ssid" in bad[0] and "timeout_ms" in bad[2], bad
