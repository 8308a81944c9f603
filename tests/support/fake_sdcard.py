"""A microSD slot for device tests: ``SDCard`` follows MicroPython's ``machine.SDCard`` (the ESP32 port's published
stubs, ``micropython-esp32-esp32-generic-stubs``: ``SDCard(slot=1, width=1, *, cd, wp, sck, cmd, data, miso, mosi,
cs, freq)``, the block protocol ``readblocks``/``writeblocks``/``ioctl``, ``info``, ``deinit``;
tests/host/test_store_sd_stub.py checks the signatures against the stubs) over a card in RAM, 512-byte blocks.

A ``Card`` sits in a slot (``insert(slot, card)``) or not. Taking it out (``card.remove()``, or ``fail_after`` block
writes from now: removal in the middle of a write) makes every block access of an ``SDCard`` made for it fail with
``OSError(EIO)``, as the firmware's driver does; constructing an ``SDCard`` for an empty slot fails too (the
firmware: a timeout). Putting it back does not revive an old ``SDCard``: the firmware needs a new one, as here.
"""

import errno

SLOTS = {}


class Card:
    def __init__(self, blocks=1024):  # (512 KB)
        self.data = bytearray(512 * blocks)
        self.present = True
        self.fail_after = -1
        self.gen = 0  # counts insertions: an SDCard made before one no longer reaches the card
        self.writes = 0

    def remove(self):
        self.present = False

    def format(self):
        import vfs

        vfs.VfsFat.mkfs(_Raw(self))


class _Raw:  # (the card as a block device for mkfs)
    def __init__(self, card):
        self.card = card

    def readblocks(self, n, buf, off=0):
        o = n * 512 + off
        buf[:] = memoryview(self.card.data)[o:o + len(buf)]

    def writeblocks(self, n, buf, off=0):
        o = n * 512 + off
        self.card.data[o:o + len(buf)] = buf

    def ioctl(self, op, arg):
        return len(self.card.data) // 512 if op == 4 else (512 if op == 5 else 0)


def insert(slot, card):
    card.present = True
    card.fail_after = -1
    card.gen += 1
    SLOTS[slot] = card


class SDCard:
    def __init__(self, slot=1, width=1, *, cd=None, wp=None, sck=None, cmd=None, data=None, miso=None, mosi=None,
                 cs=None, freq=20000000):
        card = SLOTS.get(slot)
        if card is None or not card.present:
            raise OSError(errno.ETIMEDOUT)  # (the firmware: no card answers the init sequence)
        self.card = card
        self.gen = card.gen
        self.args = {"slot": slot, "width": width, "sck": sck, "mosi": mosi, "miso": miso, "cs": cs}

    def _usable(self):
        c = self.card
        if c is None or not c.present or c.gen != self.gen:
            raise OSError(errno.EIO)
        return c

    def readblocks(self, block_num, buf, offset=0):
        c = self._usable()
        o = block_num * 512 + offset
        buf[:] = memoryview(c.data)[o:o + len(buf)]

    def writeblocks(self, block_num, buf, offset=0):
        c = self._usable()
        if c.fail_after == 0:
            c.present = False
            raise OSError(errno.EIO)
        if c.fail_after > 0:
            c.fail_after -= 1
        o = block_num * 512 + offset
        c.data[o:o + len(buf)] = buf
        c.writes += 1

    def ioctl(self, op, arg=None):
        c = self._usable()
        if op == 4:  # block count
            return len(c.data) // 512
        if op == 5:  # block size
            return 512
        return 0

    def info(self):
        c = self._usable()
        return len(c.data), 512

    def deinit(self):
        self.card = None
