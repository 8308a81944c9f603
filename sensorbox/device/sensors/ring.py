"""Batches and the sample ring: fixed-size int16 buffers shared by one writer (the sampler) and many readers.

Everything is allocated when the sensor starts; writing a batch (``write``) and reading frames (``next_held`` +
``copy_out``) copy with ``kernels.copy_i16`` at offsets and allocate nothing (tests/device/test_alloc.py holds
them under ``micropython.heap_lock``). ``read`` does both and returns a tuple (one small allocation per call).
Readers keep their own position (a sequence number). A reader that falls more than the ring's capacity behind
gets the oldest frames still held and is told how many it missed.

Sequence numbers and ``time_of`` (epoch ms) are ints: on a 32-bit board an int beyond +-2**30 is a heap object,
so an epoch time always allocates. Readers call ``time_of`` only where they publish (once per interval or
window), never per chunk.
"""

import array

from sensorbox.shared import kernels

_copy = kernels.copy_i16  # viper on the device: copies between int16 arrays at offsets, no memoryview slices


class Batch:
    """One read from a driver's FIFO: ``n`` frames of ``channels`` int16 values starting at sequence ``seq``."""

    def __init__(self, channels, capacity):
        self.channels = channels
        self.capacity = capacity
        self.data = array.array("h", bytes(2 * channels * capacity))
        self.n = 0
        self.seq = 0
        self.t_ms = 0


class SampleRing:
    def __init__(self, channels, capacity, rate_hz):
        self.channels = channels
        self.capacity = capacity  # frames
        self.rate_hz = rate_hz
        self.buf = array.array("h", bytes(2 * channels * capacity))
        self.head = 0  # sequence number of the next frame to be written
        self.t_ref_ms = 0  # epoch ms of frame seq_ref
        self.seq_ref = 0
        self.gaps = []  # recent (first_missing_seq, next_present_seq), oldest first

    def reset(self, rate_hz):
        """Start over (sampling restarted: sequence numbers begin again at 0) at ``rate_hz``."""
        self.rate_hz = rate_hz
        self.head = 0
        self.t_ref_ms = 0
        self.seq_ref = 0
        self.gaps = []

    def oldest(self):
        """Sequence number of the oldest frame still held."""
        return self.head - self.capacity if self.head > self.capacity else 0

    def time_of(self, seq):
        """Epoch ms of frame ``seq`` (from the last batch's timestamp and the nominal rate)."""
        return self.t_ref_ms + (seq - self.seq_ref) * 1000 // self.rate_hz

    def write(self, batch):
        """Append a batch. Frames between ``head`` and ``batch.seq`` (a gap) are not held: ``head`` jumps."""
        n = batch.n
        ch = self.channels
        cap = self.capacity
        seq = batch.seq
        if seq > self.head:  # a gap: the only allocation here (a tuple), once per gap
            gaps = self.gaps
            gaps.append((self.head, seq))
            oldest = seq + n - cap
            while gaps and (gaps[0][1] <= oldest or len(gaps) > 8):
                gaps.pop(0)
        self.t_ref_ms = batch.t_ms
        self.seq_ref = seq
        self.head = seq + n
        skip = 0
        if n > cap:  # a batch larger than the ring: only its last cap frames can be held (copy_i16 is unchecked)
            skip = n - cap
            seq += skip
            n = cap
        pos = seq % cap
        run = cap - pos
        if run > n:
            run = n
        _copy(batch.data, skip * ch, self.buf, pos * ch, run * ch)
        if run < n:  # wraps: the rest goes to the start of the ring
            _copy(batch.data, (skip + run) * ch, self.buf, 0, (n - run) * ch)

    def next_held(self, seq):
        """The sequence number of the first frame held at or after ``seq``: ``seq`` itself, or later when the
        frames from ``seq`` on were overwritten (the reader fell behind) or lie in a gap."""
        oldest = self.head - self.capacity
        if seq < oldest:
            seq = oldest
        for start, end in self.gaps:  # oldest first
            if start <= seq < end:
                seq = end
        return seq

    def copy_out(self, seq, out, max_frames, off=0):
        """Copy up to ``max_frames`` frames from ``seq`` (held: as ``next_held`` returned) into ``out`` (an int16
        array) from index ``off`` on; stops before a gap. Returns the number of frames copied (0: nothing new).
        Allocates nothing: the hot path of every reader (``read`` returns a tuple as well)."""
        ch = self.channels
        cap = self.capacity
        n = self.head - seq
        if n > max_frames:
            n = max_frames
        if n > cap:  # (only for a seq older than next_held gives: never copy past the ring)
            n = cap
        room = (len(out) - off) // ch
        if n > room:
            n = room
        for start, end in self.gaps:
            if seq < start < seq + n:
                n = start - seq
        if n <= 0:
            return 0
        pos = seq % cap
        run = cap - pos
        if run > n:
            run = n
        _copy(self.buf, pos * ch, out, off, run * ch)
        if run < n:
            _copy(self.buf, 0, out, off + run * ch, (n - run) * ch)
        return n

    def read(self, seq, out, max_frames, off=0):
        """Copy frames from ``seq`` on into ``out`` (an int16 array, from index ``off``). Returns (first_seq, n):
        first_seq > seq when the reader fell behind and frames were overwritten. n is 0 when nothing new is there.
        The returned tuple is an allocation: per-sample readers use ``next_held`` and ``copy_out``."""
        seq = self.next_held(seq)
        return seq, self.copy_out(seq, out, max_frames, off)
