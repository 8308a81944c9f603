"""The blocks a cold module needs in one piece when a request or a periodic job loads it (``lazy``).

On a heap that has run a while with every feature on, tens of KB are free in pieces of at most ~1 KB: what then
fails is an import that needs one block bigger than the pieces (docs/heap.md, "Blocks an import needs"). Two
kinds of block grow with the code: a function's bytecode (one block per function) and the module's globals table
(grown in one block as the import fills it: 16 bytes a slot here, 23 -> 29 -> 37 -> 47 slots). The soaks at
144wK/120wK failed most often on a 988-byte function of ``device_api`` and ``export``'s 47-slot table (752 B):
these tests keep every block of the modules requests load under the sizes that were rarely missing.
"""

import ast
import os
import re
import subprocess

from sensorbox.host import bundle

#: What requests and the services' periodic jobs load (``lazy``), and what those modules import with them.
PER_REQUEST = (
    "device.http.api", "device.http.model_api", "device.http.data_api", "device.http.labels", "device.http.static",
    "device.http.device_api", "device.http.authz", "device.http.admin", "device.http.session", "device.http.body",
    "device.http.json_body",
    "device.http.refuse", "device.http.live", "device.status", "device.log_read",
    "device.auth_check", "device.store.plan", "device.store.export", "device.store.figures", "device.store.meta",
    "device.store.classes", "device.store.retain", "device.store.rollup", "device.config_file", "shared.config_schema",
    "device.analysis.models", "device.analysis.stored", "shared.model", "shared.npy", "shared.dsp_setup",
    "device.config_running", "device.integrations.mqtt_control", "device.integrations.webhook_settings",
    "device.integrations.tls", "shared.integration_settings")
#: A function's bytecode block (prelude, bytecode, line numbers), bytes of the unix .mpy (an ESP32's are the same).
FUNCTION_MAX = 600
#: Modules with one larger, as it is (a ratchet: none may grow, none may join): Home Assistant discovery (at a
#: connect) and a model's meta check (a model load). (Keyed by module: a private name spelled in a test's string
#: would keep the bundle from renaming it, one more interned name.)
LARGER = {"device.integrations.mqtt_control": 1203, "shared.model": 922}
#: A module's globals at most: 37 fill a 37-slot table (592 bytes here); the 38th grows it to 47 (752 bytes).
GLOBALS_MAX = 37
#: More, as they are (a ratchet): ``live`` (loaded when the first live stream opens and kept while streams run).
MORE_GLOBALS = {"device.http.live": 39}
#: Fewer, as they are (a ratchet): the loads the core soaks at 120wK failed most often (heap13b), each at a table
#: one step smaller: a config update's schema (23: 368 bytes, was 28: 464) and an export (29: 464, was 37: 592).
FEWER_GLOBALS = {"shared.config_schema": 23, "device.store.export": 29}


def _varint(b, p):
    v = 0
    while True:
        c = b[p]
        p += 1
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            return v, p


def code_blocks(mpy):
    """The sizes of the code blocks of a .mpy (version 6; bytecode), the module's first, then each function's in
    the order the source defines them (depth first)."""
    b = mpy
    assert b[0] == ord("M") and b[1] == 6, b[:4]
    n_qstr, p = _varint(b, 4)
    n_obj, p = _varint(b, p)
    for _ in range(n_qstr):
        n, p = _varint(b, p)
        if not n & 1:  # (1: a static qstr's index)
            p += (n >> 1) + 1

    def obj(p):
        t = b[p]
        p += 1
        if t == 10:  # tuple
            n, p = _varint(b, p)
            for _ in range(n):
                p = obj(p)
        elif t in (5, 6, 7, 8, 9):  # str, bytes (with a terminating 0), int, float, complex
            n, p = _varint(b, p)
            p += n + (1 if t in (5, 6) else 0)
        return p

    for _ in range(n_obj):
        p = obj(p)
    out = []

    def raw(p):
        kl, p = _varint(b, p)
        assert kl & 3 == 0, "bytecode expected"  # (native code is not in the GC heap)
        out.append(kl >> 3)
        p += kl >> 3
        if kl & 4:
            n, p = _varint(b, p)
            for _ in range(n):
                p = raw(p)
        return p

    raw(p)
    return out


def function_names(source):
    """Names of the functions, classes, lambdas and comprehensions of ``source``, in the .mpy's order."""
    names = []

    def walk(node, prefix):
        for n in ast.iter_child_nodes(node):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                name = prefix + getattr(n, "name", "<lambda>")
                names.append(name)
                walk(n, name + ".")
            elif isinstance(n, (ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp)):
                names.append(prefix + "<comprehension>")
                walk(n, prefix)
            else:
                walk(n, prefix)

    walk(ast.parse(source), "")
    return names


def test_no_function_of_a_per_request_module_needs_a_large_block():
    out = bundle.build("unix")
    big = {}
    grew = {}
    for mod in PER_REQUEST:
        rel = mod.replace(".", "/")
        with open(os.path.join(out, "lib", "sensorbox", rel + ".mpy"), "rb") as f:
            sizes = code_blocks(f.read())
        with open(os.path.join(bundle.REPO, "sensorbox", rel + ".py")) as f:
            names = function_names(f.read())
        assert len(names) == len(sizes) - 1, (mod, len(names), len(sizes))
        for name, n in zip(names, sizes[1:]):
            if n > FUNCTION_MAX:
                big[mod + "." + name] = n
                if n > LARGER.get(mod, FUNCTION_MAX):
                    grew[mod + "." + name] = n
    print("functions over {} bytes: {}".format(FUNCTION_MAX, big))
    assert not grew, "split these functions (a cut-up heap lacks blocks this size): {}".format(grew)


_GLOBALS = """
import sys
from sensorbox.device import lazy
for n in {mods!r}:
    m = lazy.load("sensorbox." + n)
    print("globals", n, len(m.__dict__))
    lazy.unload("sensorbox." + n)
"""


def test_per_request_modules_keep_their_globals_table_small(tmp_path):
    out = bundle.build("unix")
    script = tmp_path / "globals.py"
    script.write_text(_GLOBALS.format(mods=PER_REQUEST))
    r = subprocess.run([bundle.micropython_path(), "-X", "heapsize=" + bundle.APP_HEAP, str(script)],
                       env=bundle.micropython_env(out), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = {m: int(n) for m, n in re.findall(r"^globals (\S+) (\d+)$", r.stdout, re.M)}
    assert set(counts) == set(PER_REQUEST), counts
    over = {m: n for m, n in counts.items() if n > MORE_GLOBALS.get(m, FEWER_GLOBALS.get(m, GLOBALS_MAX))}
    print("globals:", sorted(counts.items(), key=lambda x: -x[1])[:6])
    assert not over, "fewer module globals (a cut-up heap lacks a 752-byte block): {}".format(over)
