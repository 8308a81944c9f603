"""The test doubles of emlearn-micropython's native modules (tests/support/natmods) declare exactly what emlearn's
stubs declare, as recorded in tests/support/emlearn_api.py: the same functions, classes and methods with the same
positional parameters, nothing more (no defaults, no ``*args``: a double must not accept a call the stub would
not). With ``SENSORBOX_EMLEARN_SRC`` naming a checkout of emlearn-micropython, the record itself is compared with
its ``stubs/*.py`` and Python halves. What the doubles do when called wrongly is checked on MicroPython, against
the real modules too, by tests/device/test_emlearn.py."""

import ast
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOUBLES = os.path.join(REPO, "tests", "support", "natmods")
sys.path.insert(0, os.path.join(REPO, "tests", "support"))

import emlearn_api  # noqa: E402


def _declared(path, classes):
    """{name: parameters} of a module's top-level functions and the methods of ``classes`` ({class name in the
    file: class name to report}), ``Class.method``; plus the names of any other public function or method."""
    tree = ast.parse(open(path).read(), path)
    out = {}
    extra = []

    def params(fn):
        a = fn.args
        assert not (a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.kw_defaults), (path, fn.name)
        names = [x.arg for x in a.posonlyargs + a.args]
        return tuple(names[1:] if names and names[0] == "self" else names)

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            if not node.name.startswith("_"):
                out[node.name] = params(node)
        elif isinstance(node, ast.ClassDef):
            report = classes.get(node.name)
            if report is None:
                if not node.name.startswith("_"):
                    extra.append(node.name)
                continue
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef):
                    if fn.name == "__init__" or not fn.name.startswith("_"):
                        out[report + "." + fn.name] = params(fn)
    return out, extra


def _record(module):
    return {name: tuple(params) for m, name, params, _src in emlearn_api.API if m == module}


@pytest.mark.parametrize("module", sorted(emlearn_api.CLASSES))
def test_double_declares_exactly_the_stub_api(module):
    cls, exported = emlearn_api.CLASSES[module]
    in_file = cls if exported else "_" + cls
    got, extra = _declared(os.path.join(DOUBLES, module + ".py"), {in_file: cls})
    want = _record(module)
    if not exported:  # made only by new(): its constructor is the double's own business
        got.pop(cls + ".__init__", None)
    assert not extra, "public names the stub does not have: {}".format(extra)
    assert got == want


def test_double_would_fail_on_an_invented_signature(tmp_path):
    # the check above is not vacuous: the signature the old stand-in accepted is caught
    src = open(os.path.join(DOUBLES, "emlearn_trees.py")).read()
    bad = tmp_path / "emlearn_trees.py"
    bad.write_text(src.replace("def setdata(self, features, classes):", "def setdata(self, features, classes, lb):"))
    got, _ = _declared(str(bad), {"_Model": "Model"})
    assert got["Model.setdata"] != _record("emlearn_trees")["Model.setdata"]
    bad.write_text(src.replace("def addleaf(self, value):", "def addleaf(self, value, extra=0):"))
    with pytest.raises(AssertionError):
        _declared(str(bad), {"_Model": "Model"})


# Compared with the stubs themselves only where a checkout of emlearn-micropython is at hand
# (SENSORBOX_EMLEARN_SRC; not in CI, which has no copy): defined only then, so no run reports a skip.
if os.environ.get("SENSORBOX_EMLEARN_SRC"):
    def test_record_matches_the_stubs_and_python_halves():
        root = os.environ["SENSORBOX_EMLEARN_SRC"]
        for module, (cls, exported) in emlearn_api.CLASSES.items():
            got, _ = _declared(os.path.join(root, "stubs", module + ".py"), {cls: cls})
            want = _record(module)
            for name, params in want.items():
                assert got.get(name) == params, (module, name, got.get(name), params)
            # the stub's other entries (none is left out of the record, except constructors the C code does not have)
            assert set(got) - set(want) <= {cls + ".__init__"}, (module, set(got) - set(want))
        for module, name in (("emlearn_trees", "load_model"), ("emlearn_fft", "fill")):
            half, _ = _declared(os.path.join(root, "src", module, module + ".py"), {})
            assert len(half[name]) == len(_record(module)[name]), (module, name)
