"""An independent reader of the store's segment files on disk (the format in sensorbox/device/store/core.py),
written here with the standard library, for host tests that check what the device stored without asking it."""

import binascii
import glob
import os
import struct


def parse(data):
    """(header tuple, [(first, payload) of each whole block]) of one segment file's bytes; None when it is
    shorter than a header. Every whole block must pass its CRC-32; only the end may be torn (cut short)."""
    if len(data) < 32:
        return None
    h = struct.unpack_from("<4sBBBBHHqII", data)
    assert h[:2] == (b"SBS1", 2) and h[4] == 0 and struct.unpack_from("<I", data, 28)[0] == binascii.crc32(data[:28])
    blocks = []
    o = 32
    rows = 0
    while o + 8 <= len(data):
        crc, size, first = struct.unpack_from("<IHH", data, o)
        if o + 8 + size > len(data):
            break  # the torn end
        assert crc == binascii.crc32(data[o + 4:o + 8 + size]), o
        assert size and (h[6] == 0 or size % h[6] == 0), (o, size)
        if h[5]:  # rate rows: the first row's index
            assert first == rows % 65536, (o, first, rows)
            rows += size // h[6]
        blocks.append((first, data[o + 8:o + 8 + size]))
        o += 8 + size
    # (magic, version, code, ncols, rate, row bytes, t0, seq0, gen)
    return h[:4] + h[5:10], blocks


def segment_paths(data_dir, resource):
    paths = glob.glob(os.path.join(data_dir, "store", resource, "*.seg"))
    return sorted(paths, key=lambda p: int(os.path.basename(p)[:-4]))


def rows(data_dir, resource):
    """(t, values or the event's JSON bytes) of every stored row of ``resource``, in order."""
    out = []
    for path in segment_paths(data_dir, resource):
        with open(path, "rb") as f:
            seg = parse(f.read())
        if seg is None:
            continue
        h, blocks = seg
        rate, rb, t0 = h[4], h[5], h[6]
        for first, body in blocks:
            if resource == "events":
                for line in body.split(b"\n")[:-1]:
                    t, js = line.split(b"\t", 1)
                    out.append((int(t), js))
            elif rate:
                for i in range(len(body) // rb):
                    out.append((t0 + (first + i) * 1000 // rate, struct.unpack_from("<{}h".format(h[3]), body, i * rb)))
            else:
                for i in range(len(body) // rb):
                    v = struct.unpack_from("<i{}h".format(h[3]), body, i * rb)
                    out.append((t0 + v[0], v[1:]))
    return out


def stored_times(data_dir, resource, since):
    """Times of the rows of ``resource`` after ``since``."""
    return [t for t, v in rows(data_dir, resource) if t > since]
