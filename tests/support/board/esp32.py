"""Test double of the ESP32 port's ``esp32.Partition`` (docs/library/esp32.rst, ports/esp32/esp32_partition.c)
for the unix port, with ESP-IDF's OTA and app-rollback rules (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE); names and
signatures checked against ``micropython-esp32-esp32-generic-stubs`` (tests/host/test_board_doubles.py).

The flash holds MicroPython's ``partitions-4MiB-ota.csv`` table, each partition a file ``part_<label>.bin`` of
the board directory (``_board``), created when first written; ``otadata.json`` is the bootloader's state: which
app partition boots and whether it is still on trial. ``boot()`` is the bootloader, run when this module is
first imported in a process (a reset): an app set with ``set_boot`` starts "pending verify"; if it is still
pending at the next boot (it never called ``mark_app_valid_cancel_rollback``), the bootloader goes back to the
previous app. ``set_boot`` checks the image header as ESP-IDF does (the first byte 0xE9), so an image that is not
a firmware is refused with ``OSError`` and never booted.
"""

import os

import _board

_TABLE = (  # label, type, subtype, offset, size (partitions-4MiB-ota.csv)
    ("nvs", 1, 0x02, 0x9000, 0x4000),
    ("otadata", 1, 0x00, 0xD000, 0x2000),
    ("phy_init", 1, 0x01, 0xF000, 0x1000),
    ("ota_0", 0, 0x10, 0x10000, 0x180000),
    ("ota_1", 0, 0x11, 0x190000, 0x180000),
    ("vfs", 1, 0x81, 0x310000, 0xF0000),
)
_IMAGE_MAGIC = 0xE9
_ESP_ERR_OTA_VALIDATE_FAILED = -5379  # 0x1503
_ESP_ERR_NOT_SUPPORTED = -262


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=4096):
        if id == Partition.BOOT:
            id = _ota()["boot"]
        elif id == Partition.RUNNING:
            id = running
        for row in _TABLE:
            if row[0] == id:
                self._row = row
                break
        else:
            raise ValueError("partition not found")
        self._bs = block_size

    def __repr__(self):
        return "<Partition type={}, subtype={}, address={}, size={}, label={}, encrypted=0>".format(
            self._row[1], self._row[2], self._row[3], self._row[4], self._row[0])

    @staticmethod
    def find(type=0, subtype=0xFF, label=None):
        out = []
        for row in _TABLE:
            if row[1] == type and (subtype == 0xFF or row[2] == subtype) and (label is None or row[0] == label):
                out.append(Partition(row[0]))
        return out

    def info(self):
        r = self._row
        return (r[1], r[2], r[3], r[4], r[0], False)

    def _file(self):
        p = _board.path("part_" + self._row[0] + ".bin")
        try:
            os.stat(p)
        except OSError:
            with open(p, "wb") as f:
                f.write(b"\xff" * 4096)
        return p

    def readblocks(self, block_num, buf, offset=0):
        pos = block_num * self._bs + offset
        if pos + len(buf) > self._row[4]:
            raise OSError(-0x102)  # ESP_ERR_INVALID_ARG
        with open(self._file(), "rb") as f:
            f.seek(pos)
            got = f.read(len(buf))
        buf[:len(got)] = got
        for i in range(len(got), len(buf)):
            buf[i] = 0xFF  # erased flash
        return True

    def writeblocks(self, block_num, buf, offset=None):
        pos = block_num * self._bs + (offset or 0)
        if pos + len(buf) > self._row[4]:
            raise OSError(-0x102)
        p = self._file()
        with open(p, "r+b") as f:
            f.seek(0, 2)
            end = f.tell()
            if end < pos:
                f.write(b"\xff" * (pos - end))
            f.seek(pos)
            f.write(buf)

    def ioctl(self, op, arg=None):
        if op == 4:  # MP_BLOCKDEV_IOCTL_BLOCK_COUNT
            return self._row[4] // self._bs
        if op == 5:  # MP_BLOCKDEV_IOCTL_BLOCK_SIZE
            return self._bs
        if op == 6:  # MP_BLOCKDEV_IOCTL_BLOCK_ERASE
            self.writeblocks(arg, b"\xff" * self._bs)
            return 0
        return None

    def set_boot(self):
        if self._row[1] != Partition.TYPE_APP:
            raise OSError(-0x102)
        head = bytearray(1)
        self.readblocks(0, head)
        if head[0] != _IMAGE_MAGIC:
            raise OSError(_ESP_ERR_OTA_VALIDATE_FAILED)
        s = _ota()
        s["boot"] = self._row[0]
        s["state"] = "new" if self._row[0] != running else s.get("state", "valid")
        s["prev"] = running
        _board.save("otadata.json", s)

    def get_next_update(self):
        return Partition("ota_1" if self._row[0] == "ota_0" else "ota_0", self._bs)

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        if not rollback_enabled:
            raise OSError(_ESP_ERR_NOT_SUPPORTED)
        s = _ota()
        if s.get("state") == "pending" and s["boot"] == running:
            s["state"] = "valid"
            _board.save("otadata.json", s)


rollback_enabled = True  # CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE (MicroPython's OTA boards have it)


def _ota():
    return _board.load("otadata.json", {"boot": "ota_0", "state": "valid", "prev": "ota_0"})


def boot():
    """The bootloader at a reset: returns the label of the app partition that runs. A new image runs on trial
    ("pending"); one still on trial at the next reset is abandoned for the previous app ("rolled_back")."""
    s = _ota()
    if s.get("state") == "new":
        s["state"] = "pending"
    elif s.get("state") == "pending":
        s["boot"] = s.get("prev", "ota_0")
        s["state"] = "rolled_back"
    _board.save("otadata.json", s)
    return s["boot"]


running = boot()
