"""The bundle's renaming (sensorbox/host/names.py): only names that nothing but the device code spells, where it
provably spells them all, are renamed; the renamed source compiles and behaves the same on MicroPython, line
numbers stay."""

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
        self._tally = 0
        self._shared = 1

    def _bump(self):
        self._tally += 1
        return self._tally

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
    # a const() name is gone after compiling anyway; Thing is used from outside (mod.Thing): it stays
    # (and x: an argument name spelled nowhere but as a local variable)
    assert set(plan["globals"]) == {"_CACHE", "_helper", "public", "Other", "x"}
    assert set(plan["attrs"]) == {"_tally", "_bump", "_own"}  # _shared is set from outside: it stays
    # per class, distinct names; across classes, shared ones
    assert len({plan["attrs"][a] for a in ("_tally", "_bump")}) == 2 and plan["attrs"]["_own"] == "_0"


ARGS = '''\
import micropython


def qscale(qvalue, qfactor, qlimit):
    qtotal = qvalue * qfactor
    return min(qtotal, qlimit)


def qkeyed(qvalue, qwidth):
    return [qvalue] * qwidth


@micropython.native
def qfast(qvalue, qcount):
    return qvalue + qcount


def qshadow(max, qn):
    return max + qn


print(qscale(2, 3, 5), qkeyed(1, qwidth=2), qfast(1, 2), qshadow(1, 2), max(1, 2))
'''


def test_argument_names_spelled_only_as_locals_are_renamed(tmp_path):
    # MicroPython keeps every function's argument names (calls by keyword): each distinct one is interned
    path = _write(tmp_path, "args.py", ARGS)
    plan = names.plan([path], [])[path]
    # qwidth is passed by keyword, qvalue and qcount are arguments of a decorated (native) function, max a builtin
    g = plan["globals"]
    assert {"qfactor", "qlimit", "qn"} <= set(g) and not {"qwidth", "qvalue", "qcount", "max"} & set(g), plan
    out = names.rewrite(ARGS, plan)
    assert "qfactor" not in out and "qlimit" not in out and "qwidth" in out and "max(1, 2)" in out
    got = [subprocess.run([bundle.micropython_path(), str(_write(tmp_path, name, text))], capture_output=True,
                          text=True, timeout=30) for text, name in ((ARGS, "a.py"), (out, "b.py"))]
    assert got[0].returncode == 0 and got[0].stdout == got[1].stdout, got


DEFAULTS = '''\
class qSup:
    _qbad = None  # a private default, set and read from outside too
    _qcrit = ("a", "b")
    qkept = 0

    def qcheck(self):
        return self._qbad, self._qcrit


class qGrid:
    _qstep = 2  # read in the class body: stays
    qspan = _qstep * 4


def qmark(qs):
    qs._qbad = "x"
    return qs._qbad
'''


def test_private_class_defaults_are_renamed_with_their_attribute(tmp_path):
    path = _write(tmp_path, "dflt.py", DEFAULTS)
    plan = names.plan([path], [])[path]
    assert {"_qbad", "_qcrit"} <= set(plan["attrs"]) and "_qstep" not in plan["attrs"], plan
    assert all(plan["globals"][a] == plan["attrs"][a] for a in ("_qbad", "_qcrit"))  # the class body's line too
    out = names.rewrite(DEFAULTS + "\nprint(qmark(qSup()), qSup().qcheck(), qGrid.qspan)\n", plan)
    assert "_qbad" not in out and "_qcrit" not in out
    got = subprocess.run([bundle.micropython_path(), str(_write(tmp_path, "b.py", out))], capture_output=True,
                         text=True, timeout=30)
    assert got.stdout.strip() == "x (None, ('a', 'b')) 8", got


def test_classes_in_a_hierarchy_keep_their_attributes(tmp_path):
    mod = _write(tmp_path, "mod.py", MOD + SUB)
    plan = names.plan([mod], [])[mod]
    # Thing is Sub's base: their attributes share one namespace, so renaming either's could make them collide
    assert not {"_tally", "_bump", "_shared", "_mine"} & set(plan["attrs"]) and "_own" in plan["attrs"]


def test_rewrite_keeps_lines_and_runs_the_same_on_micropython(tmp_path):
    src = MOD + "\n\nprint(public(1), Thing().go(), Other()._own, len(_CACHE))\n"
    path = _write(tmp_path, "mod.py", src)
    plan = names.plan([path], [])[path]
    # _own is read from outside its class (Other()._own): renamed there alike, as only Other sets it
    assert {"_tally", "_bump", "_shared", "_own"} <= set(plan["attrs"])
    out = names.rewrite(src, plan)
    assert out.count("\n") == src.count("\n")
    assert "_helper" not in out and "_tally" not in out and "_own" not in out
    assert "def {}({})".format(plan["globals"]["_helper"], plan["globals"]["x"]) in out
    for text, name in ((src, "a.py"), (out, "b.py")):
        p = _write(tmp_path, name, "from micropython import const\n" + text)
        r = subprocess.run([bundle.micropython_path(), p], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["5", "2", "2", "0"], r.stdout


def test_strings_keywords_and_arguments_keep_a_name(tmp_path):
    src = ("def _a(_kw=1):\n    return _kw\n\ndef _named():\n    return 1\n\nx = _a(_kw=2)\ny = '_named'\n")
    path = _write(tmp_path, "m.py", src)
    plan = names.plan([path], []).get(path, {"globals": {}})
    assert "_named" not in plan["globals"]  # a string spells it (getattr, say)
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
    src = open(os.path.join(bundle.REPO, "sensorbox", "device", "http", "server.py")).read()
    assert len(r["globals"]) > 10 and r["attrs"], r  # (no name spelled anywhere else: a string would keep it)
    for old, new in r["globals"].items():  # each maps back to what the source defines, for tracebacks
        assert new.startswith("_") and new[1:].isdigit() and ("def " + old in src or old + " = " in src or
                                                              "class " + old in src or
                                                              old in names.WHOLE and old in src), (old, new)
    assert set(names.WHOLE) & set(r["globals"]), r  # (and names renamed in the whole program: names.WHOLE)


A = '''\
_X = 5
LIMIT = const(7)


def helper():
    return _X


class Box:
    def __init__(self):
        self.size = 3       # public, used only through self: renamed
        self.seen = 0       # public, read from outside: stays
        self._peek = 1      # private, read from outside: renamed there too

    def grow(self):         # a public method: stays
        self.size += 1
        return self.size
'''

B = '''\
from a import _X, helper


def go(box):
    return _X + helper() + box.grow() + box.seen + box._peek
'''


def test_names_shared_between_device_modules_are_renamed_alike(tmp_path):
    a = _write(tmp_path, "a.py", A)
    b = _write(tmp_path, "b.py", B)
    main = _write(tmp_path, "main.py", "import a, b\nprint(b.go(a.Box()))\n")  # (what runs them: not rewritten)
    pa = names.plan([a, b], [main], {a: "a", b: "b"})
    assert pa[a]["globals"]["_X"] == pa[b]["globals"]["_X"] and pa[a]["globals"]["helper"] == pa[b]["globals"][
        "helper"]
    assert "LIMIT" in pa[a]["globals"]  # a public const() nobody imports: gone after compiling too
    assert set(pa[a]["attrs"]) == {"size", "_peek"} and pa[b]["attrs"] == {"_peek": pa[a]["attrs"]["_peek"]}
    assert "Box" not in pa[a]["globals"] and "go" not in pa[b]["globals"]  # main.py uses them
    # a test that imports helper from a keeps it (the test is not rewritten); one that spells _X in a string too
    t = _write(tmp_path, "t.py", "from a import helper\nprint(helper(), '_X')\n")
    pt = names.plan([a, b], [main, t], {a: "a", b: "b"})
    assert "helper" not in pt[a]["globals"] and "_X" not in pt[a]["globals"]
    # a script in a host test's string spells go: it stays
    h = _write(tmp_path, "h.py", "SCRIPT = 'import b; b.go(None)'\n")
    assert "go" in names.plan([a, b], [], {a: "a", b: "b"})[b]["globals"]
    assert "go" not in names.plan([a, b], [], {a: "a", b: "b"}, [h]).get(b, {"globals": {}})["globals"]
    # and it runs the same, renamed
    for d, srcs in (("plain", (A, B)), ("renamed", (names.rewrite(A, pa[a]), names.rewrite(B, pa[b])))):
        os.makedirs(str(tmp_path / d))
        for name, text in zip(("a.py", "b.py"), srcs):
            (tmp_path / d / name).write_text("from micropython import const\n" + text if name == "a.py" else text)
        (tmp_path / d / "main.py").write_text(open(main).read())
        r = subprocess.run([bundle.micropython_path(), "main.py"], cwd=str(tmp_path / d), capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.split() == ["15"], (d, r.stdout, r.stderr)


PROP = '''\
class Slot:
    def __init__(self):
        self._v = 1

    def _getv(self):
        return self._v

    def _setv(self, v):
        self._v = v

    value = property(_getv, _setv)


s = Slot()
s.value = 4
print(s.value)
'''


def test_methods_named_in_the_class_body_keep_their_names(tmp_path):
    # value = property(_getv, _setv) reads the methods by name in the class body: renaming their defs (only
    # ever called through the property) left the class body's names behind, a NameError at import
    path = _write(tmp_path, "m.py", PROP)
    plan = names.plan([path], []).get(path, {"globals": {}, "attrs": {}})
    assert "_getv" not in plan["attrs"] and "_setv" not in plan["attrs"] and "_v" in plan["attrs"], plan
    p = _write(tmp_path, "r.py", names.rewrite(PROP, plan))
    r = subprocess.run([bundle.micropython_path(), p], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.split() == ["4"], r.stdout + r.stderr


def test_a_test_asking_for_a_renamed_name_keeps_it_renamed(tmp_path):
    # devtest.inner(obj, "_qsecret") reads a device internal by the name the bundle gave it: not a use that keeps
    # the name; a plain string or attribute in a test still is
    mod = _write(tmp_path, "qdev.py", "class QBox:\n    def __init__(self):\n        self._qsecret = 1\n"
                                      "        self._qplain = 2\n")
    test = _write(tmp_path, "qtest.py", "import qdev\nb = qdev.QBox()\nprint(inner(b, '_qsecret'), b._qplain)\n")
    plan = names.plan([mod], [test])[mod]
    assert "_qsecret" in plan["attrs"] and "_qplain" not in plan["attrs"], plan


WA = '''\
LIMIT_MS = 5
_1 = 10  # (a short name this module spells itself: given to no other name here)


class Meter:
    def __init__(self, seg_count=2):
        self.seg_count = seg_count
        self.kept = 1

    def roll_at(self, t):
        return t + self.seg_count + LIMIT_MS + _1
'''

WB = '''\
import wa


def use(m):
    return m.roll_at(wa.LIMIT_MS) + m.seg_count + m.kept + wa.Meter(seg_count=3).seg_count
'''

FILL = "".join("_F{0} = {0}\n".format(i) for i in range(8)) + "print({})\n".format(
    " + ".join("_F{}".format(i) for i in range(8)))


def test_names_of_the_whole_program_are_renamed_alike(tmp_path):
    # names.WHOLE: a public name spelled only by device code (a global read from another module, a method called
    # and attributes read from another, an argument given by keyword) is renamed everywhere alike, to a short name
    # the plan gave in other modules already and free in every module that spells it; one a test or a string
    # spells stays
    a = _write(tmp_path, "wa.py", WA)
    b = _write(tmp_path, "wb.py", WB)
    main = _write(tmp_path, "main.py", "import wb\nprint(wb.use(wb.wa.Meter()))\n")
    fa, fb = _write(tmp_path, "wc.py", FILL), _write(tmp_path, "wd.py", FILL)  # (give _0.._7 in two modules)
    whole = ("LIMIT_MS", "seg_count", "roll_at", "kept", "use", "Meter")
    mods = {a: "wa", b: "wb", fa: "wc", fb: "wd"}
    pa = names.plan([a, b, fa, fb], [main], mods, whole=whole)
    given = {old: new for p in (a, b) for old, new in pa[p]["globals"].items() if old in whole}
    assert set(given) == {"LIMIT_MS", "seg_count", "roll_at", "kept"}, pa  # (main.py spells use and Meter)
    assert all(pa[p]["globals"][x] == pa[p]["attrs"][x] == given[x] for p in (a, b) for x in given), pa
    assert len(set(given.values())) == 4 and "_1" not in given.values(), given  # (wa.py spells _1 itself)
    assert all(int(v[1:]) <= 7 for v in given.values()), given  # (no short name no other module was given)
    # a word of a string, or a test's token, keeps the name
    t = _write(tmp_path, "t.py", "print('x.seg_count')\n")
    pt = names.plan([a, b, fa, fb], [main, t], mods, whole=whole)
    assert "seg_count" not in pt[a]["globals"] and "roll_at" in pt[a]["globals"], pt[a]
    # and it runs the same, renamed
    for d, srcs in (("plain", (WA, WB)), ("renamed", (names.rewrite(WA, pa[a]), names.rewrite(WB, pa[b])))):
        os.makedirs(str(tmp_path / d))
        for name, text in zip(("wa.py", "wb.py"), srcs):
            (tmp_path / d / name).write_text(text)
        (tmp_path / d / "main.py").write_text(open(main).read())
        r = subprocess.run([bundle.micropython_path(), "main.py"], cwd=str(tmp_path / d), capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.split() == ["28"], (d, r.stdout, r.stderr)
    assert "seg_count" not in names.rewrite(WA, pa[a]) and "roll_at" not in names.rewrite(WB, pa[b])


def test_names_of_the_whole_program_are_no_foreign_objects_names():
    # names.WHOLE is renamed wherever device code spells it, also where it is an attribute of a foreign object:
    # none may be a name of MicroPython's ESP32 firmware or standard library (their published stubs), nor of
    # emlearn's natmods (their doubles: tests/support/natmods, derived from the stubs)
    import ast
    import glob
    import importlib.metadata

    spelled = set()
    files = []
    for dist in ("micropython-esp32-esp32-generic-stubs", "micropython-stdlib-stubs"):
        d = importlib.metadata.distribution(dist)
        files += [str(d.locate_file(f)) for f in d.files if str(f).endswith((".pyi", ".py"))]
    files += glob.glob(os.path.join(bundle.REPO, "tests", "support", "natmods", "*.py"))
    assert len(files) > 50, files
    for f in files:
        with open(f) as h:
            tree = ast.parse(h.read())
        for x in ast.walk(tree):
            if isinstance(x, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                spelled.add(x.name)
            elif isinstance(x, ast.Name):
                spelled.add(x.id)
            elif isinstance(x, ast.Attribute):
                spelled.add(x.attr)
            elif isinstance(x, ast.arg):
                spelled.add(x.arg)
    assert spelled >= {"deinit", "settimeout", "setdata"}, len(spelled)
    assert not set(names.WHOLE) & spelled, sorted(set(names.WHOLE) & spelled)


def test_names_of_the_whole_program_in_a_hierarchy_get_names_of_their_own(tmp_path):
    # a subclass in another module holds its base's attributes too: a name renamed in the base's module and one in
    # the subclass's never share a short name (an exception's hierarchy, without attributes, joins no modules)
    base = _write(tmp_path, "hb.py", "_P = 1\n_Q = 2\n_R = 3\n\n\nclass Base:\n    def __init__(self):\n"
                                     "        self.alpha = 1\n\n\nclass Oops(Exception):\n    pass\n")
    sub = _write(tmp_path, "hs.py", "import hb\n\n\nclass Sub(hb.Base):\n    pass\n\n\nclass Kid(Sub):\n"
                                    "    def beta(self):\n        return 2\n")
    other = _write(tmp_path, "ho.py", "import hb\n\n\nclass Odd(hb.Oops):\n    gamma = 2\n")
    fa, fb = _write(tmp_path, "wc.py", FILL), _write(tmp_path, "wd.py", FILL)
    mods = {base: "hb", sub: "hs", other: "ho", fa: "wc", fb: "wd"}
    p = names.plan([base, sub, other, fa, fb], [], mods, whole=("alpha", "beta", "gamma"))
    # (Kid has alpha, which the plan renamed in hb.py: beta, renamed in hs.py, takes none of hb.py's names)
    assert p[sub]["attrs"]["beta"] not in set(p[base]["attrs"].values()) | set(p[base]["globals"].values()), p
    # (Oops has no body of its own: ho.py is no kin of hb.py, gamma may have a short name hs.py gives too)
    assert p[other]["attrs"]["gamma"] in p[sub]["globals"].values(), p


def test_names_of_the_whole_program_share_a_new_short_name_only_in_twos(tmp_path):
    # where every short name is taken in a name's modules, a new one is given to names of modules apart; one that
    # would rename a single name is not given (it would cost the name it saves)
    sat = "".join("_{} = {}\n".format(i, i) for i in range(8)) + "\n\n"
    m1 = _write(tmp_path, "m1.py", sat + "class Box:\n    def __init__(self):\n        self.ping = 1\n\n\n"
                                         "print(Box().ping)\n")
    m2 = _write(tmp_path, "m2.py", sat + "class Cup:\n    def __init__(self):\n        self.pong = 2\n\n\n"
                                         "print(Cup().pong)\n")
    mods = {m1: "m1", m2: "m2"}
    p = names.plan([m1, m2], [], mods, whole=("ping", "pong"))
    given = {int(v[1:]) for q in (m1, m2) for k, v in p[q]["globals"].items() if k not in ("ping", "pong")}
    assert p[m1]["attrs"]["ping"] == p[m2]["attrs"]["pong"] == "_{}".format(max(given) + 1), p
    p = names.plan([m1, m2], [], mods, whole=("ping",))
    assert "ping" not in p[m1]["attrs"], p
