"""MicroPython's published ESP32 API for the host tests: PyPI's ``micropython-esp32-esp32-generic-stubs``
(generated from the firmware) unpacked for mypy (``stub_dir``, ``mypy``), and the comparison of a test double's
source with a stub (``defs``, ``check``). Used by test_platform_stubs.py (the unix port's watchdog) and
test_board_doubles.py (the ESP32 doubles in tests/support/board and the board code)."""

import ast
import importlib.metadata
import inspect
import os
import shutil
import subprocess
import sys

from sensorbox.host import bundle

REPO = bundle.REPO
STUBS = "micropython-esp32-esp32-generic-stubs"


def stub_dir(tmp):
    """(site, stubs): where the stubs package is installed (mypy's typeshed: ``micropython-stdlib-stubs``' layout,
    as the stubs' documentation sets it up) and a folder under ``tmp`` with the board's ``.pyi`` files (MYPYPATH)."""
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


def mypy(stubs, paths):
    """mypy's errors in ``paths`` (relative to the repository, or absolute) against the stubs (``stub_dir``'s
    answer). Only the checked files' errors: the stubs themselves have a few of their own."""
    site, out = stubs
    res = subprocess.run([sys.executable, "-m", "mypy", "--custom-typeshed-dir", site, "--check-untyped-defs",
                          "--follow-imports=skip", "--no-error-summary",
                          # (about the board's API: not the annotations of containers, nor attributes set later)
                          "--disable-error-code=var-annotated", "--disable-error-code=union-attr", "--cache-dir",
                          os.path.join(os.path.dirname(out), "c")] + list(paths),
                         env=dict(os.environ, MYPYPATH=out), capture_output=True, text=True, cwd=REPO)
    return [line for line in res.stdout.splitlines() if any(line.startswith(p + ":") for p in paths)
            and ": error:" in line]


def stub(stubs, module):
    """``defs`` of the stub of ``module`` ("machine", "network", "esp32")."""
    with open(os.path.join(stubs[1], module + ".pyi")) as f:
        return defs(ast.parse(f.read()).body)


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


def defs(body, method=False):
    """{name: [signatures (one per overload)] or ("const", value)} of a module's or class's body."""
    out = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.setdefault(node.name, []).append(_signature(node, method))
        elif isinstance(node, ast.ClassDef):
            out[node.name] = ("class", defs(node.body, True))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    try:
                        out[t.id] = ("const", ast.literal_eval(node.value) if node.value is not None else None)
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


def check(double, stub, where, test_only=()):
    """What in ``double`` (``defs`` of a double's source) the stub (``defs`` of the ``.pyi``) does not allow, as
    messages: a name it lacks, another constant value, a call the stub allows that the double refuses, a
    parameter the stub does not have. ``where``: the module's name; ``test_only``: names of it to leave out."""
    problems = []
    for name, d in double.items():
        if name.startswith("_") and name not in ("__init__", "__call__"):
            continue
        if name in test_only:
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
                problems += check(d[1], s[1], where + "." + name)
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
