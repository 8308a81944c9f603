"""Batches and the sample ring: fixed-size int16 buffers shared by one writer (the sampler) and many readers.

Everything is allocated when the sensor starts; writing a batch and reading frames copy through memoryviews and
allocate nothing per sample. Readers keep their own position (a sequence number). A reader that falls more than
the ring's capacity behind gets the oldest frames still held and is told how many it missed.
"""

import array


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
        self._mv = memoryview(self.buf)
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
        src = memoryview(batch.data)
        if batch.seq > self.head:
            gaps = self.gaps
            gaps.append((self.head, batch.seq))
            oldest = batch.seq + n - cap
            while gaps and (gaps[0][1] <= oldest or len(gaps) > 8):
                gaps.pop(0)
        self.head = batch.seq
        self.t_ref_ms = batch.t_ms
        self.seq_ref = batch.seq
        done = 0
        while done < n:
            pos = (self.head + done) % cap
            run = min(n - done, cap - pos)
            self._mv[pos * ch:(pos + run) * ch] = src[done * ch:(done + run) * ch]
            done += run
        self.head = batch.seq + n

    def read(self, seq, out, max_frames):
        """Copy frames from ``seq`` on into ``out`` (an int16 array). Returns (first_seq, n): first_seq > seq when
        the reader fell behind and frames were overwritten. n is 0 when nothing new is there."""
        oldest = self.oldest()
        if seq < oldest:
            seq = oldest
        n = min(self.head - seq, max_frames, len(out) // self.channels)
        for start, end in self.gaps:
            if start <= seq < end:
                seq = end
                n = min(self.head - seq, max_frames, len(out) // self.channels)
            elif seq < start < seq + n:
                n = start - seq
        if n <= 0:
            return seq, 0
        ch = self.channels
        cap = self.capacity
        dst = memoryview(out)
        done = 0
        while done < n:
            pos = (seq + done) % cap
            run = min(n - done, cap - pos)
            dst[done * ch:(done + run) * ch] = self._mv[pos * ch:(pos + run) * ch]
            done += run
        return seq, n
