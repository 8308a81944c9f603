"""Fewer interned names on the device: the bundle gives names only its own code spells short ones that modules
share.

MicroPython interns every identifier a module uses (and every string literal of up to 10 characters) for good,
in pools that double: past ~1,260 names the unix port allocates a pool for 1,280 more in one ~15 KB block
(docs/heap.md). Most names are public API, JSON keys or config keys and must stay; but a module's own
private globals (``_route``, ``_pieces``) and a class's own attributes (``self._ring``, ``self.heap_used``) are
spelled nowhere else, so they can be renamed ``_0``, ``_1``, ... : names that every module then shares.

Only what is provably safe is renamed, checked against every source that MicroPython runs (the device code,
its tests and their helper scripts, the benchmark scripts):

- a module-level name (function, class, variable; not a private ``const()``, gone after compiling anyway, not a
  dunder) that no source uses as an attribute or string, nor imports but a device module that imports it by
  that name (renamed there alike; a public ``const()`` not even that);
- a class's ``_name`` attribute or method: used only through ``self`` in the methods of the classes that have it,
  or set or defined only in one class and read anywhere in the device code (not a module-level name then); the
  classes without base classes that are no base either; nowhere a class-level name, a string, or used by a
  test or benchmark;
- a class's public data attribute (``self.x = ...``; not a method, not one of the names MicroPython's C code may
  look up itself): the same, but used only through ``self`` in that class's methods (a board's built-in objects
  have public attributes of their own: ``wlan.active``).

- a public name listed in ``WHOLE`` that only device code spells (no other source, no string): renamed in the
  whole program, every spelling alike (``_whole``).

Each renamed name gets the lowest short name that is free in every module it is spelled in (for attributes:
among the attributes of each class that has it). Tokens are replaced in place, line by line, so line numbers in tracebacks stay true;
function names there read ``_3``: ``bundle.json`` maps them back (``renames``). The map is deterministic.
"""

import ast
import io
import re
import tokenize

_SHORT = "_{}"


def _private(name):
    return name.startswith("_") and not name.startswith("__") and len(name) > 1


def _plain_uses(tree):
    """Names a source uses other than as an attribute: plain names, arguments, keywords, imported names,
    string constants, global/nonlocal declarations."""
    out = set()
    for x in ast.walk(tree):
        if isinstance(x, ast.Name):
            out.add(x.id)
        elif isinstance(x, ast.arg):
            out.add(x.arg)
        elif isinstance(x, ast.keyword) and x.arg:
            out.add(x.arg)
        elif isinstance(x, (ast.Import, ast.ImportFrom)):
            for a in x.names:
                out.add(a.name.split(".")[-1])
                if a.asname:
                    out.add(a.asname)
        elif isinstance(x, ast.Constant) and isinstance(x.value, str):
            out.add(x.value)
        elif isinstance(x, (ast.Global, ast.Nonlocal)):
            out.update(x.names)
    return out


def _module_privates(tree):
    """Private names a module defines at its top level (not const())."""
    out = set()
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            v = n.value
            if isinstance(v, ast.Call) and getattr(v.func, "id", "") == "const":
                continue  # a const() name with "_" is gone after compilation anyway
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                if isinstance(t, ast.Name):
                    out.add(t.id)
    return {x for x in out if _private(x)}


def _module_defs(tree):
    """{name: whether a const()} of what a module defines at its top level, but dunders and private consts."""
    out = {}
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[n.name] = False
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            v = n.value
            c = isinstance(v, ast.Call) and getattr(v.func, "id", "") == "const"
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                if isinstance(t, ast.Name) and not t.id.startswith("__") and not (c and _private(t.id)):
                    out[t.id] = out.get(t.id, False) or c
    return out


def const_used_early(tree, public=False):
    """Names of ``_X = const(...)`` that the module uses before that line: the compiler substitutes a const
    only after its definition, and a ``_``-name const makes no global, so such a use is a NameError at run
    time (it happened: a type table defined after the class that used it)."""
    defs = {}
    for n in tree.body:
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and \
                getattr(n.value.func, "id", "") == "const":
            for t in n.targets:
                if isinstance(t, ast.Name) and (public or _private(t.id)):
                    defs.setdefault(t.id, n.lineno)
    bad = []
    for x in ast.walk(tree):
        if isinstance(x, ast.Name) and x.id in defs and x.lineno < defs[x.id]:
            bad.append((x.id, x.lineno))
    return bad


#: Names MicroPython's C code may look up on an object by itself (streams, generators, asyncio, ...): a public
#: attribute so named is never renamed (private ones and methods are not looked up so).
_RUNTIME = frozenset((
    "append", "args", "clear", "close", "copy", "count", "end", "extend", "find", "format", "get", "index", "insert",
    "items", "key", "keys", "pop", "popitem", "read", "readinto", "readline", "remove", "send", "sep", "start",
    "step", "stop", "throw", "update", "value", "values", "write", "flush", "ioctl", "drain", "readexactly",
    "aclose", "awrite", "fileno", "seek", "tell", "data", "state", "cancel", "name"))


def _module_names(tree):
    """Names a module binds at its top level (assignments, def, class, import, global): its attributes."""
    out = set()
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
            continue
        for x in ast.walk(n):
            if isinstance(x, ast.Name) and not isinstance(x.ctx, ast.Load):
                out.add(x.id)
            elif isinstance(x, (ast.Import, ast.ImportFrom)):
                for a in x.names:
                    out.add((a.asname or a.name).split(".")[0])
    for x in ast.walk(tree):
        if isinstance(x, ast.Global):
            out.update(x.names)
    return out


def _class_names(tree):
    """Names bound in a class body (class attributes and defaults), and names its statements read there (a
    method named in ``x = property(_get, _set)``: renaming the method's ``def`` would leave that name behind)."""
    out = set()
    for c in ast.walk(tree):
        if isinstance(c, ast.ClassDef):
            for n in c.body:
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    for d in n.decorator_list:  # (read in the class body too)
                        out.update(x.id for x in ast.walk(d) if isinstance(x, ast.Name))
                    continue
                for x in ast.walk(n):
                    if isinstance(x, ast.Name):
                        out.add(x.id)
    return out


#: The test helpers (``tests/support/devtest.py``) through which a test reads a device internal by the name the
#: bundle gave it (``renamed("_fails")``, ``inner(auth, "_fails")``): the strings they are given keep no name.
_HELPERS = ("renamed", "inner")


def _asked(tree):
    """ids of the string constants that calls of ``_HELPERS`` are given."""
    return {id(a) for x in ast.walk(tree) if isinstance(x, ast.Call) and getattr(x.func, "id", "") in _HELPERS
            for a in x.args if isinstance(a, ast.Constant)}


def _class_defaults(tree):
    """({name: {class}} of the private names a class body binds by a plain assignment, names read in class bodies
    other than by those assignments' targets)."""
    out, read = {}, set()
    for c in ast.walk(tree):
        if isinstance(c, ast.ClassDef):
            for n in c.body:
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    for d in n.decorator_list:
                        read.update(x.id for x in ast.walk(d) if isinstance(x, ast.Name))
                    continue
                simple = isinstance(n, ast.Assign) and all(isinstance(t, ast.Name) for t in n.targets)
                for x in ast.walk(n):
                    if isinstance(x, ast.Name):
                        if simple and x in n.targets and _private(x.id):
                            out.setdefault(x.id, set()).add(c.name)
                        else:
                            read.add(x.id)
    return out, read


def _plain_count(tree, name):
    return sum(1 for x in ast.walk(tree) if isinstance(x, ast.Name) and x.id == name)


def _binds(tree, name):
    """How many class-body assignments bind ``name`` in ``tree``."""
    return sum(1 for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for n in c.body
               if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name) and t.id == name)


def _attributes(tree):
    """[(attribute, class or None, through self, stored)] for every attribute use; the classes that have a
    base or are one; {method name: classes defining it}."""
    uses = []
    based = set()
    methods = {}

    def visit(node, cls):
        for ch in ast.iter_child_nodes(node):
            c = cls
            if isinstance(ch, ast.ClassDef):
                c = ch.name
                if ch.bases or ch.keywords:
                    based.add(ch.name)
                    for b in ch.bases:
                        if isinstance(b, ast.Name):
                            based.add(b.id)
                for m in ch.body:
                    if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        methods.setdefault(m.name, set()).add(ch.name)
            if isinstance(ch, ast.Attribute):
                me = isinstance(ch.value, ast.Name) and ch.value.id == "self"
                uses.append((ch.attr, c, me, not isinstance(ch.ctx, ast.Load)))
            visit(ch, c)

    visit(tree, None)
    return uses, based, methods


def _from_imports(tree):
    """{(module, name)} that ``from module import name`` binds under its own name; and those imported with an
    alias or by ``*``."""
    plain = set()
    other = set()
    for x in ast.walk(tree):
        if isinstance(x, ast.ImportFrom) and x.module:
            for a in x.names:
                (other if a.name == "*" or a.asname else plain).add((x.module, a.name))
    return plain, other


_BUILTINS = frozenset(dir(__import__("builtins"))) | {"const", "micropython"}


def _spelled(trees):
    """Names the sources spell other than as a local variable: keyword arguments, attributes, imports, ``def`` and
    ``class`` names, ``global``/``nonlocal`` names."""
    out = set()
    for t in trees:
        for x in ast.walk(t):
            if isinstance(x, ast.keyword) and x.arg:
                out.add(x.arg)
            elif isinstance(x, ast.Attribute):
                out.add(x.attr)
            elif isinstance(x, (ast.Import, ast.ImportFrom)):
                for a in x.names:
                    out.update(a.name.split("."))
                    out.add(a.asname)
            elif isinstance(x, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(x.name)
            elif isinstance(x, (ast.Global, ast.Nonlocal)):
                out.update(x.names)
    return out


def _local_names(tree, spelled):
    """Argument names of a module's functions that are spelled nowhere but as local variables: MicroPython keeps
    each function's argument names (for calls by keyword), so every distinct one is an interned name. Such a
    name is renamed in the whole module (every use of it there is a local variable): not one in ``spelled``
    (``_spelled``, strings, module- and class-level names of every source), a builtin, nor an argument of a
    decorated (viper, native) function."""
    args = set()
    deco = set()
    for f in ast.walk(tree):
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = {a.arg for a in f.args.posonlyargs + f.args.args + f.args.kwonlyargs}
            (deco if f.decorator_list else args).update(names)
    return sorted(x for x in args - deco - spelled - _BUILTINS
                  if x != "self" and not x.startswith("__") and not (x[:1] == "_" and x[1:].isdigit()))


def plan(device_files, other_files, modules=None, scripts=(), whole=None):
    """{path: {"globals": {old: new}, "attrs": {old: new}}} for the device sources ``device_files`` (paths),
    checked against every source in ``device_files`` + ``other_files`` (tests, benchmark scripts). ``modules``:
    {path: dotted module name} of the device sources (for ``from module import name``). ``scripts``: further
    sources (host tests, benchmarks) whose strings may hold MicroPython code: no name spelled in one is renamed.
    ``whole``: names renamed wherever the device code spells them (``WHOLE``, ``_whole``)."""
    modules = modules or {}
    trees = {}
    for p in list(device_files) + list(other_files):
        with open(p) as f:
            trees[p] = ast.parse(f.read(), p)
    dev = set(device_files)
    for p in device_files:
        for name, line in const_used_early(trees[p]):
            raise ValueError("{}:{}: {} is used before its const() definition".format(p, line, name))
    strings = set()
    bound = set()  # module-level names anywhere: attributes of modules
    cls_bound = set()  # class-level names anywhere: class attributes
    for t in trees.values():
        asked = _asked(t)  # (a test's ``inner(obj, "_name")``: asks for the renamed name, does not keep it)
        strings.update(x.value for x in ast.walk(t) if isinstance(x, ast.Constant) and isinstance(x.value, str) and
                       id(x) not in asked)
        bound |= _module_names(t)
        cls_bound |= _class_names(t)
    for p in scripts:
        with open(p) as f:
            t = ast.parse(f.read(), p)
        for x in ast.walk(t):
            if isinstance(x, ast.Constant) and isinstance(x.value, str):
                strings.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", x.value))
    plain = {p: _plain_uses(t) for p, t in trees.items()}
    imports = {p: _from_imports(t) for p, t in trees.items()}
    attr_uses = {}  # attr -> [(path, class, via self, stored)]
    based = set()
    methods = {}  # method name -> {(path, class)}
    for p, t in trees.items():
        uses, b, m = _attributes(t)
        based |= b
        for a, cs in m.items():
            methods.setdefault(a, set()).update((p, c) for c in cs)
        for a, c, me, st in uses:
            attr_uses.setdefault(a, []).append((p, c, me, st))
    taken = {p: {x for x in plain[p] if x.startswith("_") and x[1:].isdigit()} for p in trees}

    found = []  # (kind, old name, owner, files it is spelled in)
    for p in device_files:
        mod = modules.get(p)
        defs = _module_defs(trees[p])
        early = {x for x, line in const_used_early(trees[p], True)}  # (renamed "_k", a const would be gone)
        for x in sorted(set(defs) - early):
            if x in attr_uses or x in strings or (x in _RUNTIME and not _private(x)):
                continue
            files = [p]
            for q in trees:
                if q == p:
                    continue
                if (mod, x) in imports[q][1] or (mod, x) in imports[q][0] and (
                        q not in dev or defs[x] or x in _module_defs(trees[q])):
                    break  # imported by a test, under another name, as a public const, or shadowed: left alone
                if (mod, x) in imports[q][0]:
                    files.append(q)
            else:
                again = {modules.get(q) for q in files[1:]}  # re-exported by an importer: left alone
                if not any(m in again and n == x for q in trees for m, n in imports[q][0] | imports[q][1]):
                    found.append(("g", x, p, files, ()))
    defaults, cls_read = {}, set()  # a class's private defaults (``_x = None`` in its body): {name: {(path, class)}}
    for p, t in trees.items():
        d, r = _class_defaults(t)
        cls_read |= r
        for a, cs in d.items():
            defaults.setdefault(a, set()).update((p, c) for c in cs)
    for a in sorted(attr_uses.keys() | methods.keys()):
        us = attr_uses.get(a, [])
        dflt = defaults.get(a, set())
        if a in cls_bound and not (_private(a) and dflt and a not in cls_read and a not in bound and all(
                q in dev and _plain_count(trees[q], a) == _binds(trees[q], a) for q, c in dflt)):
            continue  # (a private class default spelled nowhere else in its module: renamed there too)
        if a.startswith("__") or a in strings or any(q not in dev for q, c, me, st in us):
            continue
        defs = methods.get(a, set())
        mine = all(me for q, c, me, st in us)  # used only through self
        if not _private(a) and (defs or a in _RUNTIME or not mine):
            continue  # public: data attributes used only through self (a board's built-in objects have others)
        owners = {(q, c) for q, c, me, st in us if me} | defs | dflt
        if any(c is None or c in based or q not in dev for q, c in owners):
            continue
        if not mine and (len(owners) != 1 or a in bound or (not dflt and any(st and not me for q, c, me, st in us))):
            continue  # read from outside: one class must own it, and nothing outside set it (but its default)
        found.append(("a", a, tuple(sorted(owners)), sorted({q for q, c, me, st in us} | {q for q, c in owners}),
                      sorted({q for q, c in dflt})))
    spelled = _spelled(trees.values()) | strings | bound | cls_bound
    found.extend(("g", x, p, [p], ()) for p in device_files for x in _local_names(trees[p], spelled))

    out = {}
    used = {}  # ("g", path) or ("a", (path, class)) -> short names given there (a module's, a class's)
    for kind, old, owner, files, dflt in found:
        spaces = [("g", q) for q in files] if kind == "g" else [("a", o) for o in owner] + [("g", q) for q in dflt]
        i = 0
        while True:
            new = _SHORT.format(i)
            if all(new not in taken[q] for q in files) and not any(new in used.get(s, ()) for s in spaces):
                break
            i += 1
        for s in spaces:
            used.setdefault(s, set()).add(new)
        for q in files:
            out.setdefault(q, {"globals": {}, "attrs": {}})["globals" if kind == "g" else "attrs"][old] = new
        for q in dflt:  # the default's own line in the class body
            out[q]["globals"][old] = new
    _whole(out, trees, dev, modules, scripts, WHOLE if whole is None else whole)
    return out


def rewrite(source, renames):
    """``source`` with the names of ``renames`` (as ``plan`` gives for it) replaced, line numbers kept."""
    g = renames.get("globals", {})
    a = renames.get("attrs", {})
    lines = source.splitlines(keepends=True)
    edits = {}  # line index -> [(col, old, new)]
    prev = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.NAME:
            after_dot = prev is not None and prev.string == "."
            new = None
            if after_dot:
                new = a.get(tok.string)
            elif prev is not None and prev.string == "def" and tok.line[:1] not in ("d", "a"):  # a method
                new = a.get(tok.string) or g.get(tok.string)
            else:
                new = g.get(tok.string)
            if new is not None:
                edits.setdefault(tok.start[0] - 1, []).append((tok.start[1], tok.string, new))
        prev = tok
    for i, es in edits.items():
        line = lines[i]
        for col, old, new in sorted(es, reverse=True):
            assert line[col:col + len(old)] == old, (i, line, old)
            line = line[:col] + new + line[col + len(old):]
        lines[i] = line
    return "".join(lines)


#: Public names renamed in the whole program (``_whole``): each is spelled only by device code (as a module's
#: global, a class's attribute or method, an argument, a keyword), so renaming every one of its spellings alike
#: keeps the program the same. Listed, not found, because what keeps a name is also the foreign objects the device
#: code uses (a board's ``machine``, ``network``, ``esp32``, the sockets, emlearn's natmods): a name those have
#: (the firmware's stubs; tests/host/test_names.py checks) must not be here. Names a test, a script or a string
#: spells are left alone whatever this says. Each costs one interned name less where it gets a short name that
#: the modules it is spelled in do not use yet.
WHOLE = (
    "COOKIE", "InputError", "MAX_CLASSES", "MAX_NODES", "REBOOT", "Reader", "STR", "WEBHOOK_RESOURCES", "_RES",
    "_block", "_buf", "_drop", "_far_leaf", "_far_node", "_fs", "_gen", "_hist", "_k", "_later", "_mv", "_next",
    "_node", "_pairs", "_ring", "_rmtree", "_rolled", "_since", "_size", "_slast", "_trusted", "bad_bytes", "bad_segs",
    "bitlen", "blen", "bn", "bt0", "buckets", "check_update", "cnew", "configured", "content_length", "den",
    "drop_cursor", "feats_t", "file_bytes", "gens", "heap_min_free", "heap_peak_used", "listening", "make_driver",
    "max_age", "max_content_length", "max_readline", "n_items", "n_scales", "name_of", "old_rollup", "on_error",
    "ret_bytes", "roll_at", "sample_heap", "secrets", "seg_bytes", "seg_gen", "seg_name", "seg_ncols", "seg_next",
    "seg_rate", "seg_rows", "seg_size", "send_file", "start_network", "subs", "synced", "tokens_path",
    "webhook_resources", "woke")

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHORT_RE = re.compile(r"_[0-9]+$")


def _docstrings(tree):
    """ids of the docstrings of a module, its classes and functions."""
    out = set()
    for x in ast.walk(tree):
        if isinstance(x, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and x.body:
            d = x.body[0]
            if isinstance(d, ast.Expr) and isinstance(d.value, ast.Constant) and isinstance(d.value.value, str):
                out.add(id(d.value))
    return out


def _tokens(source):
    return [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.NAME]


def _whole(out, trees, dev, modules, scripts, whole):
    """Adds to ``out`` (``plan``'s) the names of ``whole`` that only the device code spells, each renamed in every
    device module that spells it to the lowest short name that none of them uses, among the short names the plan
    gave already (so that it costs no new name; where none is free, a new one shared by names of modules apart).
    Not renamed: a name any other source spells (a test, a helper script, a benchmark: any token, or any word of a
    string of a script), a word of a string of any source (but a docstring; ``getattr(x, "name")``), a builtin, a
    name MicroPython's C code looks up, a module's name, a ``const()`` (renamed ``_k``, it would be no global), a
    name the plan renamed already somewhere."""
    sources = {}
    for p in trees:
        with open(p) as f:
            sources[p] = f.read()
    keep = set(_BUILTINS) | _RUNTIME
    for m in modules.values():
        keep.update(m.split("."))
    for p, t in trees.items():
        for n in ast.walk(t):  # (a const() renamed "_k" makes no global: a module importing it would fail)
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and \
                    getattr(n.value.func, "id", "") == "const":
                keep.update(x.id for x in n.targets if isinstance(x, ast.Name))
        docs = _docstrings(t)
        for x in ast.walk(t):
            if isinstance(x, ast.Constant) and isinstance(x.value, str) and id(x) not in docs:
                keep.update(_WORD.findall(x.value))
        if p not in dev:
            keep.update(_tokens(sources[p]))
    for p in scripts:
        with open(p) as f:
            s = f.read()
        keep.update(_tokens(s))
        for x in ast.walk(ast.parse(s, p)):
            if isinstance(x, ast.Constant) and isinstance(x.value, str):
                keep.update(_WORD.findall(x.value))
    renamed = set()
    for r in out.values():
        renamed.update(r["globals"])
        renamed.update(r["attrs"])
    spells = {p: set(_tokens(sources[p])) for p in trees if p in dev}
    used = {}  # path -> short names it spells once renamed
    given = {}  # short name -> how many modules the plan gave it in
    for p in spells:
        r = out.get(p, {"globals": {}, "attrs": {}})
        mine = set(r["globals"].values()) | set(r["attrs"].values())
        used[p] = {x for x in spells[p] if _SHORT_RE.match(x)} | mine
        for x in mine:
            given[x] = given.get(x, 0) + 1
    # (the short names of at least two modules: one module alone may be one no board loads)
    top = max([-1] + [int(x[1:]) for x, n in given.items() if n > 1])
    # A class that inherits from a device class, or is inherited from, may hold attributes named in another module
    # than its own: the modules of a hierarchy's classes that have a method or a class attribute count as one (a
    # short name given in one is taken in all of them; a class with neither, an exception, adds none).
    top_of = {}  # device class name -> a name its hierarchy shares
    rich = {}  # device class name -> modules where it is defined with a body of its own

    def root(c):
        while top_of.get(c, c) != c:
            c = top_of[c]
        return c

    for p in spells:
        for c in ast.walk(trees[p]):
            if isinstance(c, ast.ClassDef):
                top_of.setdefault(c.name, c.name)
                if any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Assign, ast.AnnAssign))
                       for n in c.body):
                    rich.setdefault(c.name, set()).add(p)
    for p in spells:
        for c in ast.walk(trees[p]):
            if isinstance(c, ast.ClassDef):
                for b in c.bases:  # (``Base`` or ``module.Base``)
                    b = b.id if isinstance(b, ast.Name) else getattr(b, "attr", None)
                    if b in top_of:
                        top_of[root(c.name)] = root(b)
    groups = {}
    for c, ps in rich.items():
        groups.setdefault(root(c), set()).update(ps)
    kin = {}  # module -> modules of the hierarchies of its classes
    for c, ps in rich.items():
        for p in ps:
            kin.setdefault(p, set()).update(groups[root(c)])
    todo = []
    for name in whole:
        if name in keep or name in renamed or name.startswith("__"):
            continue
        files = sorted(p for p in spells if name in spells[p])
        if files:
            todo.append((name, sorted(set(files).union(*[kin.get(p, ()) for p in files]))))
    todo.sort(key=lambda x: (-len(x[1]), x[0]))  # (the names of the most modules first: the fewest choices)

    def give(name, files, new):
        for p in files:
            used[p].add(new)
            if name in spells[p]:
                r = out.setdefault(p, {"globals": {}, "attrs": {}})
                r["globals"][name] = new
                r["attrs"][name] = new

    left = []
    for name, files in todo:
        for i in range(top + 1):
            new = _SHORT.format(i)
            if not any(new in used[p] for p in files):
                give(name, files, new)
                break
        else:
            left.append((name, files))
    # Names no short name had room for: new short names, each given to names of modules apart (a new name that
    # renames two saves one; one that would rename only one name is not given).
    i = top + 1
    while left:
        new = _SHORT.format(i)
        mine, rest, taken = [], [], set()
        for name, files in left:
            if taken.isdisjoint(files) and not any(new in used[p] for p in files):
                mine.append((name, files))
                taken.update(files)
            else:
                rest.append((name, files))
        if len(mine) < 2:
            break
        for name, files in mine:
            give(name, files, new)
        left = rest
        i += 1
