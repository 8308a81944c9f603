"""Shared code imports nothing from the device (issue 12 item 1): every module of ``sensorbox/shared`` runs on
CPython and in the browser, where there is no device package. The source is scanned, not just the import graph:
an ``import``/``from`` (absolute or relative), and any string in the code (not a docstring) that names a
``sensorbox.device`` module, which is what ``__import__``, ``lazy.load``, ``sys.modules`` or a ``const`` would be
given."""

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(REPO, "sensorbox", "shared")


def _docstrings(tree):
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _device(name):
    return name == "sensorbox.device" or name.startswith("sensorbox.device.") or name.startswith("sensorbox/device")


def device_imports(source, package="sensorbox.shared"):
    """[(line, what)] for each way ``source`` (a module of ``package``) reaches into ``sensorbox.device``."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, "import " + a.name) for a in node.names if _device(a.name)]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # relative: resolved against the package
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([mod] if mod else []))
            names = [mod] + [mod + "." + a.name for a in node.names]
            if any(_device(n) for n in names):
                out.append((node.lineno, "from {} import {}".format(mod, ", ".join(a.name for a in node.names))))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if _device(node.value.strip()):
                out.append((node.lineno, "string {!r}".format(node.value)))
        elif isinstance(node, ast.JoinedStr):  # an f-string put together from parts
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if _device(text):
                out.append((node.lineno, "f-string {!r}".format(text)))
    return out


def test_no_shared_module_imports_the_device():
    found = []
    files = sorted(f for f in os.listdir(SHARED) if f.endswith(".py"))
    assert "kernels.py" in files and "kernels_viper.py" in files, files
    for f in files:
        with open(os.path.join(SHARED, f)) as fh:
            for line, what in device_imports(fh.read()):
                found.append("sensorbox/shared/{}:{}: {}".format(f, line, what))
    assert not found, "shared code must not import sensorbox.device:\n" + "\n".join(found)


def test_the_scan_finds_every_form():
    # each of these reaches into the device; the scan must name every one
    forms = [
        "import sensorbox.device.lazy",
        "import sensorbox.device.analysis.trees as t",
        "from sensorbox.device import lazy",
        "from sensorbox.device.analysis.trees import vote",
        "from sensorbox import device",
        "from ..device import lazy",
        "from ..device.analysis import trees",
        "__import__('sensorbox.device.lazy')",
        "m = lazy.load('sensorbox.device.analysis.models')",
        "lz = sys.modules.get('sensorbox.device.lazy')",
        "_M = const('sensorbox.device.http.server')",
        "def f():\n    try:\n        from sensorbox.device import lazy\n    except ImportError:\n        pass",
        "f'sensorbox.device.{name}'",
    ]
    for src in forms:
        assert device_imports(src), src
    # ...and these do not
    clean = [
        '"""Docstrings may name sensorbox.device.lazy, which runs the code."""',
        "from sensorbox.shared import kernels_viper",
        "from . import trees",
        "x = 'sensorbox.shared.dsp_setup'",
        "# sensorbox.device.lazy in a comment",
        "y = 'the device'",
    ]
    for src in clean:
        assert not device_imports(src), src
