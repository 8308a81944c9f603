"""An independent reader of the store's segment files on disk (the format in sensorbox/device/store/core.py),
written here with the standard library (and the shared codec for coded blocks), for host tests that check what the
device stored without asking it."""

import binascii
import glob
import os
import struct


def parse(data):
    """(header tuple, [(first, rows) of each whole block]) of one segment file's bytes; None when it is shorter
    than a header. Every whole block must pass its CRC-32; only the end may be torn (cut short). Coded blocks
    (codec 1) are decoded here with the shared codec (on CPython): ``rows`` are the rows' bytes either way."""
    from sensorbox.shared import codec

    if len(data) < 32:
        return None
    h = struct.unpack_from("<4sBBBBHHqII", data)
    assert h[:2] == (b"SBS1", 2) and h[4] in (0, 1) and struct.unpack_from("<I", data, 28)[0] == \
        binascii.crc32(data[:28])
    assert h[4] == 0 or h[6], "a text segment is never coded"
    blocks = []
    o = 32
    rows = 0
    out = bytearray(1024)
    while o + 8 <= len(data):
        crc, size, first = struct.unpack_from("<IHH", data, o)
        if o + 8 + size > len(data):
            break  # the torn end
        assert crc == binascii.crc32(data[o + 4:o + 8 + size]), o
        body = data[o + 8:o + 8 + size]
        if h[4]:
            n = codec.decode(body, 0, size, h[6] // 2, out, 0, len(out))
            assert n > 0 and n * h[6] <= 510, (o, n)  # (a coded block holds at most 510 bytes of rows)
            body = bytes(out[:n * h[6]])
        assert body and (h[6] == 0 or len(body) % h[6] == 0), (o, size)
        if h[5]:  # rate rows: the first row's index
            assert first == rows % 65536, (o, first, rows)
            rows += len(body) // h[6]
        blocks.append((first, body))
        o += 8 + size
    # (magic, version, code, ncols, rate, row bytes, t0, seq0, gen)
    return h[:4] + h[5:10], blocks


def segment_paths(data_dir, resource):
    """The segments of ``resource`` in order (a rollup's ``rollup-stage.seg`` last: its newest rows)."""
    paths = glob.glob(os.path.join(data_dir, "store", resource, "*.seg"))
    stage = [p for p in paths if os.path.basename(p) == "rollup-stage.seg"]
    paths = sorted((p for p in paths if p not in stage), key=lambda p: int(os.path.basename(p)[:-4]))
    return paths + stage


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
