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
  Random numbers in tests come from ``tests/support/testrng.py``, which every interpreter above sees.

Tests run with the repository root as working directory. ``tests/support`` is on the path of device tests; a
module that sets ``BOARD = True`` also gets ``tests/support/board`` first: test doubles of the ESP32 port's
``network``, ``machine`` and ``esp32`` modules (checked against MicroPython's stubs, tests/host/test_board_doubles.py).
"""

import ast
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
# tests/support/testrng.py, the tests' random numbers, for shared tests on CPython (MicroPython runs have
# tests/support on their path; tests/wasm_runner.mjs copies it); appended, so it shadows nothing
sys.path.append(os.path.join(REPO, "tests", "support"))

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
    # every identifier-like string the module spells ("_route" in inner(server, "_route")): the renames a test
    # may ask devtest for (_renames_env)
    consts["_STRINGS"] = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                          and n.value.isidentifier()}
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


def _heap(size):
    """``size`` ("96wK") moved by SENSORBOX_HEAP_STEP_WK words x 1024 ("-2": 94wK): to show that a test passes
    by design, not by where its heap happens to end (run it at its heap +-1, 2, 4 and with a short and a long
    ``--basetemp``: docs/testing.md)."""
    step = int(os.environ.get("SENSORBOX_HEAP_STEP_WK") or 0)
    if not step:
        return size
    assert size.endswith("wK"), size
    return "{}wK".format(int(size[:-2]) + step)


_renames = {}  # renames.txt's mtime -> its lines as (module, old, new)


def _renames_env(spelled):
    """SENSORBOX_RENAMES for a device test that spells the strings ``spelled``: "module old new;..." for each
    name of the test bundle's renames.txt among them. devtest reads it once, at import: a test asking
    ``inner(obj, "_x")`` at any point of its run (on a heap it has cut up, with a model loaded) allocates
    nothing for the lookup, and no test reads the whole renames.txt (~840 lines of garbage per call)."""
    path = os.path.join(BUILD_TEST_BUNDLE, "renames.txt")
    try:
        key = os.path.getmtime(path)
    except OSError:
        return ""
    if key not in _renames:
        rows = []
        with open(path) as f:
            for line in f:
                rel, _, old, new = line.split()
                mod = rel[:-len("/__init__.py")] if rel.endswith("/__init__.py") else rel[:-3]
                rows.append((mod.replace("/", "."), old, new))
        _renames.clear()
        _renames[key] = rows
    return ";".join(" ".join(r) for r in _renames[key] if r[1] in spelled)


class MicroPythonItem(pytest.Item):
    def __init__(self, *, test, variant, consts, **kw):
        super().__init__(**kw)
        self.test = test
        self.variant = variant
        self.consts = consts
        self.add_marker(getattr(pytest.mark, variant))
        # travels with the report to the controller of a parallel run (pytest_runtest_logreport counts it there)
        self.user_properties.append(("interpreter", variant))

    def runtest(self):
        # Under pytest's --basetemp, like tmp_path: concurrent runs never share (or delete) each other's files.
        tmp = str(self.config._tmp_path_factory.mktemp("{}-{}-{}".format(self.variant, self.path.stem, self.test)))
        if self.variant == "wasm":
            cmd = ["node", os.path.join(REPO, "tests", "wasm_runner.mjs"), REPO, str(self.path), self.test]
            cmd += list(self.consts.get("DATA_FILES", ()))
            env = dict(os.environ, NODE_PATH=os.path.join(REPO, "node_modules"))
        else:
            test_dir = _compile_test(self.path)
            heap = _heap(self.consts.get("HEAPSIZE", DEVICE_HEAP))
            cmd = [bundle.micropython_path(), "-X", "heapsize=" + heap, os.path.join(REPO, "tests", "mp_runner.py"),
                   self.path.stem, self.test]
            path = (test_dir, _compiled_support())
            if self.consts.get("BOARD"):  # the ESP32's network, machine and esp32 modules as test doubles
                path = (_compiled_support("support/board"),) + path
            device = _kind(self.path) == "device"
            if device and self.consts.get("NATMODS") and not bundle.natmods_dir():
                path += (_compiled_support("support/natmods"),)
            # shared tests check that every interpreter computes the same: emlearn's float modules would not
            env = bundle.micropython_env(BUILD_TEST_BUNDLE, {"SENSORBOX_TEST_TMP": tmp, "SENSORBOX_RENAMES":
                                                             _renames_env(self.consts["_STRINGS"])},
                                         path=path, natmods=device)
        try:
            res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise MicroPythonFailure("timed out after {} s\n{}".format(TIMEOUT_S, (e.stdout or b"")[-4000:]))
        if not (res.returncode == 0 and "SENSORBOX-TEST PASS" in res.stdout):
            raise MicroPythonFailure("exit status {}\n--- stdout ---\n{}\n--- stderr ---\n{}".format(
                res.returncode, res.stdout[-6000:], res.stderr[-6000:]))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MicroPythonFailure):
            return "{} on {}:\n{}".format(self.test, self.variant, excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, "{}::{}".format(os.path.relpath(str(self.path), REPO), self.name)


# --- Parallel runs (pytest-xdist: `make test` runs `-n TEST_JOBS`) -------------------------------------------------
# The scheduler below hands out tests in units, in the collection's order as sorted here:
# - Tests that share a module-scoped fixture (a device, a browser) are one unit; so are all tests that use Chromium
#   (one browser at a time); every other test is a unit of its own.
# - ``@pytest.mark.alone`` (the heap soaks and budget: another test's CPU use shows there as 503s and a fuller
#   heap) are one unit, first. While it runs the other workers get only ``@pytest.mark.light`` tests (little CPU:
#   they mostly wait for a device's own time, outages and retries).
# - ``@pytest.mark.slow`` (more than ~15 s alone) come next, so that none of them is the last thing running.
# (xdist's own ``--dist loadgroup`` cannot do this, and with pytest 9.2 it ignores its groups: pytest-xdist #1386.)

#: fixtures whose users are one unit, run one after the other: unit name per fixture
SERIAL_FIXTURES = {"chromium": "chromium"}
ALONE = "alone"


def _unit(item):
    if item.get_closest_marker("alone"):
        return ALONE
    info = getattr(item, "_fixtureinfo", None)
    names = info.name2fixturedefs if info else {}
    for name, unit in SERIAL_FIXTURES.items():
        if name in names:
            return unit
    for fixturedefs in names.values():
        if any(d.scope in ("module", "class", "package") for d in fixturedefs):
            return os.path.relpath(str(item.path), REPO)
    return item.nodeid


#: fixtures whose tests get a marker (pyproject.toml registers them; `make test-fast` leaves them out): Chromium,
#: and the whole device app over real sockets (tests/host/conftest.py)
FIXTURE_MARKERS = {"chromium": "browser", "device_app": "e2e", "device_factory": "e2e"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in getattr(item, "fixturenames", ()):
            if name in FIXTURE_MARKERS:
                item.add_marker(FIXTURE_MARKERS[name])
        # a device or shared test module (which cannot import pytest) names its slow tests in ``SLOW``
        if isinstance(item, MicroPythonItem):
            slow = item.test in item.consts.get("SLOW", ())
        else:
            slow = getattr(item, "originalname", None) in getattr(getattr(item, "module", None), "SLOW", ())
        if slow:
            item.add_marker("slow")
    units = {}
    for item in items:
        units.setdefault(_unit(item), []).append(item)

    def rank(item):
        return 0 if item.get_closest_marker("alone") else 1 if item.get_closest_marker("slow") else 2

    # a unit goes where its most urgent test goes; otherwise the collection's order stays (the sort is stable)
    first = {u: min(rank(i) for i in its) for u, its in units.items()}
    items.sort(key=lambda i: first[_unit(i)])
    d = _parallel_dir(config)
    if d:  # a worker: the units, for the controller's scheduler (every worker writes the same)
        plan = {"units": {i.nodeid: u for u, its in units.items() for i in its if u != i.nodeid},
                "light": [u for u, its in units.items() if all(i.get_closest_marker("light") for i in its)]}
        tmp = os.path.join(d, "units.json.{}".format(os.getpid()))
        with open(tmp, "w") as f:
            json.dump(plan, f)
        os.replace(tmp, os.path.join(d, "units.json"))


def _parallel_dir(config):
    return getattr(config, "workerinput", {}).get("sensorbox_parallel")


def _controller_dir(config):
    d = config._tmp_path_factory.getbasetemp() / "parallel"
    d.mkdir(exist_ok=True)
    return str(d)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):  # (the controller, for each worker it starts)
    node.workerinput["sensorbox_parallel"] = _controller_dir(node.config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None  # (--dist loadfile, each, ...: as asked)
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        """xdist's scope scheduling over the units above (the workers write them to units.json as they collect)."""

        plan = None

        def _split_scope(self, nodeid):
            if self.plan is None:
                try:
                    with open(os.path.join(_controller_dir(self.config), "units.json")) as f:
                        self.plan = json.load(f)
                except OSError:
                    self.plan = {"units": {}, "light": []}
                self.plan["light"] = set(self.plan["light"])
            return self.plan["units"].get(nodeid, nodeid)

        def _alone_on(self):
            for node, work in self.assigned_work.items():
                if ALONE in work and not all(work[ALONE].values()):
                    return node
            return None

        def _pick(self, node):
            """The unit ``node`` gets next (None: none now)."""
            if ALONE in self.workqueue:
                return ALONE
            busy = self._alone_on()
            if busy is None:
                return next(iter(self.workqueue))
            light = self.plan["light"]
            heavy = next((u for u in self.workqueue if u not in light), None)
            if busy is node:  # (a worker runs a test once it has the next: one the others may not take now)
                return heavy or next(iter(self.workqueue))
            # beside the alone unit, light units; behind the last of them one more, which waits there (for the
            # same reason) until the alone unit is done
            if any(u not in light for u, work in self.assigned_work[node].items() if not all(work.values())):
                return None
            return next((u for u in self.workqueue if u in light), heavy)

        def _reschedule(self, node):
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) > 2:
                return
            unit = self._pick(node)
            if unit is None:
                return
            work = self.assigned_work[node][unit] = self.workqueue.pop(unit)
            collection = self.registered_collections[node]
            node.send_runtest_some([collection.index(n) for n, done in work.items() if not done])

        def _start_all(self):
            for _ in range(2):  # two units each: a worker runs a test once it has the next one (or is told to end)
                for node in self.nodes:
                    self._reschedule(node)

        def mark_test_complete(self, node, item_index, duration=0):
            busy = self._alone_on()
            super().mark_test_complete(node, item_index, duration)
            if busy is not None and self._alone_on() is None:
                self._start_all()

        def remove_node(self, node):
            crashed = super().remove_node(node)  # (a crashed worker's unfinished units go back to the queue...)
            if ALONE in self.workqueue:
                self.workqueue.move_to_end(ALONE, last=False)  # (...the alone unit to its front)
            return crashed

        def schedule(self):
            assert self.collection_is_completed
            if self.collection is None:
                if not self._check_nodes_have_same_collection():
                    self.log("**Different tests collected, aborting run**")
                    return
                self.collection = list(next(iter(self.registered_collections.values())))
                for nodeid in self.collection:  # in the collection's order (sorted above)
                    self.workqueue.setdefault(self._split_scope(nodeid), {})[nodeid] = False
            self._start_all()

    return Units(config, log)


def pytest_runtest_logreport(report):
    # In a parallel run (pytest-xdist) the controller sees every worker's reports: the counts add up there.
    variant = dict(report.user_properties).get("interpreter")
    if variant in _results and report.when == "call":
        _results[variant][0 if report.passed else 1] += 1


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
