"""State shared by the board test doubles in this folder (``network``, ``machine``, ``esp32``): what a real board
keeps in its radio, RTC, eFuses and flash, kept here in files of one directory so that it survives a "reset" (a
new MicroPython process) as it does on the board. The directory is ``SENSORBOX_BOARD``, else the test's
scratch directory, else ".". Tests edit the files (or call the helpers) to change the world around the board."""

import json
import os


def path(name):
    d = os.getenv("SENSORBOX_BOARD") or os.getenv("SENSORBOX_TEST_TMP") or "."
    return d + "/" + name


def load(name, default):
    try:
        with open(path(name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def save(name, obj):
    tmp = path(name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path(name))


def mtime(name):
    try:
        return os.stat(path(name))[8]
    except OSError:
        return None
