"""The device bundle: every device module compiles with mpy-cross for every target and fits the flash budget, the
budget of each board profile (sensorbox.host.boards) included."""

import json
import os
import subprocess

import pytest

from sensorbox.host import boards, bundle


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A fresh bundle per target, built once for this module's tests."""
    cache = {}

    def get(target):
        if target not in cache:
            cache[target] = bundle.build(target, out_dir=str(tmp_path_factory.mktemp("bundle") / target))
        return cache[target]
    return get


@pytest.mark.parametrize("target", sorted(bundle.TARGETS))
def test_bundle_compiles_and_fits_flash(target, built):
    out = built(target)
    m = json.load(open(os.path.join(out, "bundle.json")))
    assert m["arch"] == bundle.TARGETS[target]
    sources = [rel for _, rel in bundle.device_sources()]
    for rel in sources:  # (the unix bundle: not the ESP32's Wi-Fi, BOARDS_ONLY; boards': not NOT_ON_BOARDS)
        want = rel not in bundle.NOT_ON_BOARDS if target != "unix" else not rel.startswith(bundle.BOARDS_ONLY)
        assert ("lib/" + rel[:-3] + ".mpy" in m["files"]) == want, rel
    assert "main.py" in m["files"] and "www/config-schema.json.gz" in m["files"]
    assert ("www/setup.html.gz" in m["files"]) == (target != "unix")
    assert m["flash_bytes"] <= bundle.FLASH_BUDGET_BYTES, m["flash_bytes"]
    with open(os.path.join(out, "lib", "sensorbox", "device", "app.mpy"), "rb") as f:
        data = f.read()
    assert data[0] == ord("M") and data[1] == 6  # .mpy version 6, what MicroPython >= 1.23 loads
    # the source name in tracebacks is the module name, which the import interns anyway (no qstr of its own)
    assert b"sensorbox.device.app" in data and b"sensorbox/device/app.py" not in data


#: Which boards carry the Analysis page's runtime (MicroPython WebAssembly, ~260 KB of flash): those with room.
ANALYSIS_ON = {"esp32": False, "esp32-sd": False, "esp32c3": False, "esp32s3": True, "esp32s3-psram": True,
               "unix": False}


@pytest.mark.parametrize("board", sorted(boards.PROFILES))
def test_bundle_fits_each_board_profile(board, built):
    # the flash budget per profile: the bundle for its target (architecture), with the Analysis page's runtime when
    # it has room for it (what deploy --board copies), within what the profile allows
    p = boards.PROFILES[board]
    assert bundle.TARGETS[p["target"]] == p["arch"]
    out = bundle.build_for(board)
    m = json.load(open(os.path.join(out, "bundle.json")))
    full = bundle.manifest(bundle.build(p["target"], analysis=True))
    base = bundle.manifest(bundle.build(p["target"]))
    print("{}: bundle {} KB of flash, with the analysis runtime {} KB (+{} KB), budget {} KB: runtime {}".format(
        board, base["flash_bytes"] // 1024, full["flash_bytes"] // 1024,
        (full["flash_bytes"] - base["flash_bytes"]) // 1024, p["flash_budget"] // 1024,
        "on the board" if m["analysis"] else "served by sensorbox ui"))
    assert m["analysis"] == ANALYSIS_ON[board] == bundle.has_room(full, p)
    assert m["flash_bytes"] <= p["flash_budget"], (board, m["flash_bytes"])
    if p["fs"]:
        assert m["flash_bytes"] + p["data_min"] <= p["fs"], board  # the bundle and the data it must leave fit
    with open(os.path.join(out, "lib", "sensorbox", "shared", "kernels_viper.mpy"), "rb") as f:
        assert boards.mpy_header(f.read(4)) == (6, p["arch"], 3)  # viper code: native for the profile's chip


def test_module_names():
    assert bundle.module_name("sensorbox/device/store/core.py") == "sensorbox.device.store.core"
    assert bundle.module_name("sensorbox/device/__init__.py") == "sensorbox.device"
    assert bundle.module_name("sensorbox/__init__.py") == "sensorbox"
    assert bundle.module_name("microdot/microdot.py") == "microdot.microdot"


def test_building_again_never_shows_a_device_half_a_file(built, tmp_path):
    # Devices start and serve from a bundle while another process (a test, `sensorbox run`) builds it again: a
    # device that read half a main.py exited at once with status 0. An unchanged file is not written again...
    out = built("unix")
    files = [os.path.join(out, p) for p in json.load(open(os.path.join(out, "bundle.json")))["files"]]
    files.append(os.path.join(out, "bundle.json"))
    before = {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in files}
    bundle.build("unix", out_dir=out)
    assert {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in files} == before
    # ...and a changed one is written aside and renamed over the old: who opened the old one reads all of it
    dst = tmp_path / "m.mpy"
    (tmp_path / "a.py").write_text("A = 1\n")
    (tmp_path / "b.py").write_text("B = [2] * 3\n" * 50)
    bundle.compile_one(str(tmp_path / "a.py"), str(dst), "x64", "m")
    old = dst.read_bytes()
    with open(dst, "rb") as held:
        bundle.compile_one(str(tmp_path / "b.py"), str(dst), "x64", "m")
        assert held.read() == old and dst.read_bytes() != old
    assert sorted(os.listdir(tmp_path)) == ["a.py", "b.py", "m.mpy"]  # no temporary file left


def test_a_module_mpy_cross_rejects_fails_the_build(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("@micropython.viper\ndef f(x: int) -> int:\n    return x + 1.5\n")
    with pytest.raises(bundle.BuildError) as e:
        bundle.compile_one(str(bad), str(tmp_path / "bad.mpy"), "x64", "bad.py")
    assert "bad.py" in str(e.value)


def test_device_bundles_leave_line_numbers_out_unless_asked(tmp_path, monkeypatch):
    # (docs/heap.md, "Line numbers") the app's bundle without them (~3 KB of heap), the tests' copy with them; a
    # traceback from a module compiled without them still names the function
    assert json.load(open(os.path.join(bundle.build("unix"), "bundle.json")))["lines"] is False
    tests_copy = bundle.build("unix", out_dir=os.path.join(bundle.BUILD, "unix-tests"), host_only=True)
    assert json.load(open(os.path.join(tests_copy, "bundle.json")))["lines"] is True
    src = tmp_path / "boom.py"
    src.write_text("def f():\n    x = 1\n    return x / 0\n")
    tb = {}
    for lines in (True, False):
        d = tmp_path / str(lines)
        bundle.compile_one(str(src), str(d / "boom.mpy"), "x64", "boom.py", lines)
        r = subprocess.run([bundle.micropython_path(), "-c", "import boom; boom.f()"], cwd=str(d),
                           capture_output=True, text=True, env=dict(os.environ, MICROPYPATH=str(d)))
        tb[lines] = r.stdout + r.stderr
    assert 'line 3, in f' in tb[True] and 'line 1, in f' in tb[False], tb
    assert os.path.getsize(tmp_path / "False" / "boom.mpy") < os.path.getsize(tmp_path / "True" / "boom.mpy")
    monkeypatch.setenv("SENSORBOX_LINES", "1")
    assert bundle.keep_lines()
    monkeypatch.delenv("SENSORBOX_LINES")
    assert not bundle.keep_lines()


def test_flash_accounting_rounds_to_blocks():
    assert bundle.flash_bytes([1, 4096, 4097]) == 4096 + 4096 + 8192


_ROMFS_PROBE = """
import gc, sys, vfs
img = sys.argv[1] if len(sys.argv) > 1 else None
if img:
    f = open(img, "rb")  # on a board: the romfs partition, memory-mapped flash; here read in place (no copy:
    buf = bytearray(f.seek(0, 2))  # the unix image is over half of the probe's heap)
    f.seek(0)
    f.readinto(buf)
    f.close()
    vfs.mount(vfs.VfsRom(buf), "/rom")
    sys.path.insert(0, "/rom/lib")
gc.collect()
a = gc.mem_alloc()
import sensorbox.device.store.core as m
gc.collect()
print(m.__file__, gc.mem_alloc() - a)
"""


def test_romfs_image_is_imported_in_place(tmp_path):
    # The image holds the bundle's lib/; the unix port mounts it with vfs.VfsRom and imports from it. Code
    # from the image keeps its bytecode and constants in the image: the import costs less heap than from files.
    import subprocess

    out = bundle.build("unix")
    img = bundle.build_romfs(out)
    assert img == out + ".romfs" and open(img, "rb").read(3) == b"\xd2\xcd\x31"  # ROMFS header ("RM1")
    probe = tmp_path / "probe.py"
    probe.write_text(_ROMFS_PROBE)

    def run(args, path):
        env = dict(os.environ, MICROPYPATH=":".join((".frozen",) + path))
        r = subprocess.run([bundle.micropython_path(), "-X", "heapsize=256wK", str(probe)] + args, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        f, n = r.stdout.split()
        return f, int(n)

    rom_file, rom_heap = run([img], ())  # nothing on the file system's path: only the image has the code
    fs_file, fs_heap = run([], (os.path.join(out, "lib"),))
    assert rom_file.startswith("/rom/lib/sensorbox/") and not fs_file.startswith("/rom")
    assert rom_heap < 0.8 * fs_heap, (rom_heap, fs_heap)
