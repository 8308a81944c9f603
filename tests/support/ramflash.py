"""A flash chip in RAM as a block device for os.VfsLfs2 (littlefs, as on an ESP32), for device tests and
benchmarks. Like NOR flash, an erase sets a block to 0xFF; programs and erases are counted (a wear proxy)."""


class RamFlash:
    def __init__(self, blocks, size=4096):
        self.size = size
        self.data = bytearray(blocks * size)
        self.progs = 0
        self.erases = 0

    def readblocks(self, b, buf, off=0):
        o = b * self.size + off
        buf[:] = memoryview(self.data)[o:o + len(buf)]

    def writeblocks(self, b, buf, off=0):
        o = b * self.size + off
        self.data[o:o + len(buf)] = buf
        self.progs += 1

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return len(self.data) // self.size
        if op == 5:  # block size
            return self.size
        if op == 6:  # erase
            o = arg * self.size
            self.data[o:o + self.size] = b"\xff" * self.size
            self.erases += 1
            return 0
        return None
