"""One pytest run for every interpreter sensorbox runs on.

- ``tests/host/test_*.py``: CPython (host tools), collected by pytest as usual.
- ``tests/device/test_*.py``: device tests. Never imported by CPython: each ``test_*`` function (sync or async)
  runs in its own process on the MicroPython unix port, compiled to .mpy like the code under test (the bundle in
  build/unix-tests: build/unix plus the host-only shared modules), under ``-X heapsize=DEVICE_HEAP`` (a module may set ``HEAPSIZE = "..."``). A failure shows the
  MicroPython traceback. With ``SENSORBOX_NATMODS`` set, emlearn-micropython's real native modules from that
  folder are on their path; otherwise a module that sets ``NATMODS = True`` gets the test doubles of
  ``tests/support/natmods`` (which follow emlearn's stubs, tests/support/emlearn_api.py) and the others none.
- ``tests/shared/test_*.py``: shared code, run three times: CPython (plain pytest), ``[micropython]`` (unix port,
  from .mpy) and ``[wasm]`` (MicroPython WebAssembly under Node, which has no viper/native emitters).
  Shared tests are synchronous and use plain ``assert``. A module lists data files it opens in ``DATA_FILES``.

Tests run with the repository root as working directory. ``tests/support`` is on the path of device tests; a
module that sets ``BOARD = True`` also gets ``tests/support/board`` first: test doubles of the ESP32 port's
``network``, ``machine`` and ``esp32`` modules (checked against MicroPython's stubs, tests/host/test_board_doubles.py).
"""

import ast
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from sensorbox.host import bundle  # noqa: E402

#: Heap for device tests: 96K words = 96 KB on a 32-bit ESP32, below what one without PSRAM leaves to Python
#: with Wi-Fi up. The whole app runs at ``bundle.APP_HEAP`` (tests/host), its heap checked against
#: ``bundle.HEAP_BUDGET`` by tests/host/test_heap_budget.py.
DEVICE_HEAP = "96wK"
TIMEOUT_S = 120
BUILD_TESTS = os.path.join(REPO, "build", "tests")
#: The bundle device and shared tests run on: the unix bundle plus the shared modules no board gets
#: (``bundle.HOST_ONLY``). The app itself (tests/host) runs from build/unix, as ``sensorbox run`` does.
BUILD_TEST_BUNDLE = os.path.join(REPO, "build", "unix-tests")
_results = {"micropython": [0, 0], "wasm": [0, 0]}


def pytest_sessionstart(session):
    os.chdir(REPO)
    try:
        bundle.build("unix")
        bundle.build("unix", out_dir=BUILD_TEST_BUNDLE, host_only=True)
        bundle.build("unix", analysis=True)  # what `sensorbox run` runs: the Analysis page's runtime in www
    except bundle.BuildError as e:
        raise pytest.UsageError(str(e))


def _module_info(path):
    tree = ast.parse(open(path).read(), str(path))
    names, consts = [], {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
            names.append(node.name)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return names, consts


def _kind(path):
    parts = os.path.relpath(str(path), REPO).split(os.sep)
    if len(parts) >= 3 and parts[0] == "tests" and parts[-1].startswith("test_") and parts[-1].endswith(".py"):
        return parts[1]
    return None


def pytest_pycollect_makemodule(module_path, parent):
    if _kind(module_path) == "device":
        return MicroPythonFile.from_parent(parent, path=module_path, variants=("micropython",))
    return None


def pytest_collect_file(file_path, parent):
    if _kind(file_path) == "shared":
        return MicroPythonFile.from_parent(parent, path=file_path, variants=("micropython", "wasm"))
    return None


class MicroPythonFile(pytest.File):
    def __init__(self, *, variants, **kw):
        super().__init__(**kw)
        self.variants = variants

    def collect(self):
        names, consts = _module_info(self.path)
        for variant in self.variants:
            for name in names:
                yield MicroPythonItem.from_parent(self, name="{}[{}]".format(name, variant), test=name,
                                                  variant=variant, consts=consts)


class MicroPythonFailure(Exception):
    pass


def _compile_test(path):
    rel = os.path.relpath(str(path), REPO)
    out = os.path.join(BUILD_TESTS, os.path.dirname(rel))
    dst = os.path.join(out, os.path.basename(rel)[:-3] + ".mpy")
    if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(str(path)):
        bundle.compile_one(str(path), dst, bundle.TARGETS["unix"], rel)
    return out


def _compiled_support(sub="support"):
    src = os.path.join(REPO, "tests", *sub.split("/"))
    out = os.path.join(BUILD_TESTS, sub.replace("/", "_"))
    for f in os.listdir(src):
        if f.endswith(".py"):
            dst = os.path.join(out, f[:-3] + ".mpy")
            if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(os.path.join(src, f)):
                bundle.compile_one(os.path.join(src, f), dst, bundle.TARGETS["unix"], "tests/{}/{}".format(sub, f))
    return out


class MicroPythonItem(pytest.Item):
    def __init__(self, *, test, variant, consts, **kw):
        super().__init__(**kw)
        self.test = test
        self.variant = variant
        self.consts = consts
        self.add_marker(getattr(pytest.mark, variant))

    def runtest(self):
        # Under pytest's --basetemp, like tmp_path: concurrent runs never share (or delete) each other's files.
        tmp = str(self.config._tmp_path_factory.mktemp("{}-{}-{}".format(self.variant, self.path.stem, self.test)))
        if self.variant == "wasm":
            cmd = ["node", os.path.join(REPO, "tests", "wasm_runner.mjs"), REPO, str(self.path), self.test]
            cmd += list(self.consts.get("DATA_FILES", ()))
            env = dict(os.environ, NODE_PATH=os.path.join(REPO, "node_modules"))
        else:
            test_dir = _compile_test(self.path)
            heap = self.consts.get("HEAPSIZE", DEVICE_HEAP)
            cmd = [bundle.micropython_path(), "-X", "heapsize=" + heap, os.path.join(REPO, "tests", "mp_runner.py"),
                   self.path.stem, self.test]
            path = (test_dir, _compiled_support())
            if self.consts.get("BOARD"):  # the ESP32's network, machine and esp32 modules as test doubles
                path = (_compiled_support("support/board"),) + path
            device = _kind(self.path) == "device"
            if device and self.consts.get("NATMODS") and not bundle.natmods_dir():
                path += (_compiled_support("support/natmods"),)
            # shared tests check that every interpreter computes the same: emlearn's float modules would not
            env = bundle.micropython_env(BUILD_TEST_BUNDLE, {"SENSORBOX_TEST_TMP": tmp},
                                         path=path, natmods=device)
        try:
            res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            _results[self.variant][1] += 1
            raise MicroPythonFailure("timed out after {} s\n{}".format(TIMEOUT_S, (e.stdout or b"")[-4000:]))
        ok = res.returncode == 0 and "SENSORBOX-TEST PASS" in res.stdout
        _results[self.variant][0 if ok else 1] += 1
        if not ok:
            raise MicroPythonFailure("exit status {}\n--- stdout ---\n{}\n--- stderr ---\n{}".format(
                res.returncode, res.stdout[-6000:], res.stderr[-6000:]))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MicroPythonFailure):
            return "{} on {}:\n{}".format(self.test, self.variant, excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, "{}::{}".format(os.path.relpath(str(self.path), REPO), self.name)


def pytest_terminal_summary(terminalreporter):
    mp, wasm = _results["micropython"], _results["wasm"]
    terminalreporter.write_line(
        "sensorbox: {} tests ran on MicroPython (unix port, .mpy, heap {}): {} passed, {} failed; "
        "{} on MicroPython WebAssembly: {} passed, {} failed".format(
            mp[0] + mp[1], DEVICE_HEAP, mp[0], mp[1], wasm[0] + wasm[1], wasm[0], wasm[1]))


def pytest_configure(config):
    config.addinivalue_line("markers", "micropython: runs on the MicroPython unix port")
    config.addinivalue_line("markers", "wasm: runs on MicroPython WebAssembly (Node)")
    config.addinivalue_line("markers", "proof: the proof suite (issue 11): short in `make test`, full size with "
                            "SENSORBOX_PROOF=full (`make proof`); each prints its figures")
    config.addinivalue_line("markers", "ha: runs a real Home Assistant core (its venv: tests/host/ha_core.py); "
                            "`make test-ha` runs these at full size")
