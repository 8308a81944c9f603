"""The bundle's private-name renaming (sensorbox/host/names.py): only provably private names are renamed, the
renamed source compiles and behaves the same on MicroPython, line numbers stay."""

import os
import subprocess

import pytest

from sensorbox.host import bundle, names

MOD = '''\
_CACHE = {}
_LIMIT = const(3)


def _helper(x):
    return x + 1


def public(x):
    return _helper(x) + _LIMIT


class Thing:
    def __init__(self):
        self._count = 0
        self._shared = 1

    def _bump(self):
        self._count += 1
        return self._count

    def go(self):
        return self._bump() + self._shared


class Other:
    def __init__(self):
        self._own = 2
'''

SUB = '''
class Sub(Thing):
    def __init__(self):
        super().__init__()
        self._mine = 3
'''

OTHER = '''\
import mod
t = mod.Thing()
t._shared = 5          # used from outside: stays
print(getattr(t, "_exported", None))
'''


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_only_provably_private_names_are_renamed(tmp_path):
    mod = _write(tmp_path, "mod.py", MOD)
    other = _write(tmp_path, "other.py", OTHER)
    plan = names.plan([mod], [other])[mod]
    assert set(plan["globals"]) == {"_CACHE", "_helper"}  # a const() name is gone after compiling anyway
    assert set(plan["attrs"]) == {"_count", "_bump", "_own"}  # _shared is used from outside: it stays
    # per class, distinct names; across classes, shared ones
    assert len({plan["attrs"][a] for a in ("_count", "_bump")}) == 2 and plan["attrs"]["_own"] == "_0"


def test_classes_in_a_hierarchy_keep_their_attributes(tmp_path):
    mod = _write(tmp_path, "mod.py", MOD + SUB)
    plan = names.plan([mod], [])[mod]
    # Thing is Sub's base: their attributes share one namespace, so renaming either's could make them collide
    assert not {"_count", "_bump", "_shared", "_mine"} & set(plan["attrs"]) and "_own" in plan["attrs"]


def test_rewrite_keeps_lines_and_runs_the_same_on_micropython(tmp_path):
    src = MOD + "\n\nprint(public(1), Thing().go(), Other()._own, len(_CACHE))\n"
    path = _write(tmp_path, "mod.py", src)
    plan = names.plan([path], [])[path]
    assert {"_count", "_bump", "_shared"} <= set(plan["attrs"]) and "_own" not in plan["attrs"]
    out = names.rewrite(src, plan)
    assert out.count("\n") == src.count("\n")
    assert "_helper" not in out and "_count" not in out and "def _1(x)" in out
    for text, name in ((src, "a.py"), (out, "b.py")):
        p = _write(tmp_path, name, "from micropython import const\n" + text)
        r = subprocess.run([bundle.micropython_path(), p], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["5", "2", "2", "0"], r.stdout


def test_strings_keywords_and_arguments_keep_a_name(tmp_path):
    src = ("def _a(_b=1):\n    return _b\n\ndef _c():\n    return 1\n\nx = _a(_b=2)\ny = '_c'\n")
    path = _write(tmp_path, "m.py", src)
    plan = names.plan([path], []).get(path, {"globals": {}})
    assert "_c" not in plan["globals"]  # a string spells it (getattr, say)
    assert "_a" in plan["globals"]


def test_a_const_used_before_its_definition_fails_the_build(tmp_path):
    src = "def f():\n    return _T\n\n_T = const(1)\n"
    assert names.const_used_early(__import__("ast").parse(src)) == [("_T", 2)]
    path = _write(tmp_path, "m.py", src)
    with pytest.raises(ValueError) as e:
        names.plan([path], [])
    assert "_T is used before its const() definition" in str(e.value)


def test_the_bundle_records_its_renames():
    out = bundle.build("unix")
    import json

    m = json.load(open(os.path.join(out, "bundle.json")))
    r = m["renames"]["sensorbox/device/http/server.py"]
    assert r["globals"]["_dispatch"].startswith("_") and r["globals"]["_dispatch"][1:].isdigit()
