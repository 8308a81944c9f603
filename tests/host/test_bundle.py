"""The device bundle: every device module compiles with mpy-cross for both targets and fits the flash budget."""

import json
import os

import pytest

from sensorbox.host import bundle


@pytest.mark.parametrize("target", sorted(bundle.TARGETS))
def test_bundle_compiles_and_fits_flash(target, tmp_path):
    out = bundle.build(target, out_dir=str(tmp_path / target))
    m = json.load(open(os.path.join(out, "bundle.json")))
    assert m["arch"] == bundle.TARGETS[target]
    sources = [rel for _, rel in bundle.device_sources()]
    for rel in sources:
        assert "lib/" + rel[:-3] + ".mpy" in m["files"], rel
    assert "main.py" in m["files"] and "www/config-schema.json" in m["files"]
    assert m["flash_bytes"] <= bundle.FLASH_BUDGET_BYTES, m["flash_bytes"]
    with open(os.path.join(out, "lib", "sensorbox", "device", "app.mpy"), "rb") as f:
        data = f.read()
    assert data[0] == ord("M") and data[1] == 6  # .mpy version 6, what MicroPython >= 1.23 loads
    # the source name in tracebacks is the module name, which the import interns anyway (no qstr of its own)
    assert b"sensorbox.device.app" in data and b"sensorbox/device/app.py" not in data


def test_module_names():
    assert bundle.module_name("sensorbox/device/store/core.py") == "sensorbox.device.store.core"
    assert bundle.module_name("sensorbox/device/__init__.py") == "sensorbox.device"
    assert bundle.module_name("sensorbox/__init__.py") == "sensorbox"
    assert bundle.module_name("microdot/microdot.py") == "microdot.microdot"


def test_a_module_mpy_cross_rejects_fails_the_build(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("@micropython.viper\ndef f(x: int) -> int:\n    return x + 1.5\n")
    with pytest.raises(bundle.BuildError) as e:
        bundle.compile_one(str(bad), str(tmp_path / "bad.mpy"), "x64", "bad.py")
    assert "bad.py" in str(e.value)


def test_flash_accounting_rounds_to_blocks():
    assert bundle.flash_bytes([1, 4096, 4097]) == 4096 + 4096 + 8192


_ROMFS_PROBE = """
import gc, sys, vfs
img = sys.argv[1] if len(sys.argv) > 1 else None
if img:
    buf = bytearray(open(img, "rb").read())  # on a board: the romfs partition, memory-mapped flash
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
