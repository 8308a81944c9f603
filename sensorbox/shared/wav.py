"""WAV (RIFF) headers for 16-bit PCM: reading where a file's samples are, and writing one for a clip.

    rate, channels, bits, offset, nbytes = wav.parse(f.read(wav.HEAD))   # then seek(offset), readinto(...)
    f.write(wav.header(16000, 1, nbytes))                                # 44 bytes, then the int16 samples

Small enough for a device: the simulated microphone replays WAV files through it (sensors/sim_wav.py), and a clip
of the sound stream is a WAV file with this header (16-bit little-endian mono PCM). Host tools read any WAV
(8/16/24/32-bit, float, extensible) with ``sensorbox.host.importer.read_wav``.
"""

import struct

HEAD = 512  # bytes read to find the chunks (a header with long metadata chunks before "data" is refused)


class WavError(ValueError):
    pass


def parse(head):
    """(rate, channels, bits, data offset, data bytes) of the 16-bit PCM WAV whose first bytes are ``head``
    (``HEAD`` of them, or the whole file). The data length is what the header says (a file cut short holds
    less: readers stop at its end). Raises WavError saying what is wrong."""
    if len(head) < 12 or head[0:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WavError("not a WAV file (no RIFF/WAVE header)")
    pos = 12
    fmt = None
    while pos + 8 <= len(head):
        cid = head[pos:pos + 4]
        size = struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if cid == b"fmt ":
            if size < 16 or pos + 24 > len(head):
                raise WavError("fmt chunk of {} bytes".format(size))
            tag, ch, rate, _, _, bits = struct.unpack("<HHIIHH", head[pos + 8:pos + 24])
            if tag == 0xFFFE and size >= 26 and pos + 34 <= len(head):  # WAVE_FORMAT_EXTENSIBLE
                tag = struct.unpack("<H", head[pos + 32:pos + 34])[0]
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise WavError("data chunk before the fmt chunk")
            tag, ch, rate, bits = fmt
            if tag != 1 or bits != 16:
                raise WavError("format {} with {} bits: 16-bit PCM only".format(tag, bits))
            if ch < 1 or rate < 1:
                raise WavError("{} channels at {} Hz".format(ch, rate))
            return rate, ch, bits, pos + 8, size
        pos += 8 + size + (size & 1)
    raise WavError("no data chunk in the first {} bytes".format(len(head)))


def header(rate, channels, nbytes):
    """The 44-byte header of a 16-bit PCM WAV file holding ``nbytes`` of samples."""
    return b"RIFF" + struct.pack("<I", 36 + nbytes) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16) + b"data" + struct.pack("<I", nbytes)
