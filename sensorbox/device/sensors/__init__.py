"""Sensors: drivers that deliver batches of int16 samples, and the sampling service that moves them into a ring.

A driver models a sensor with a hardware FIFO. It has ``name``, ``columns`` (channel names), ``rate_hz`` and
``fifo_frames``, and three methods:

- ``start()``: configure the part and empty its FIFO; the sample clock starts at sequence number 0.
- ``read(batch)``: copy up to ``batch.capacity`` frames from the FIFO into ``batch.data`` (interleaved int16,
  one frame = one sample of every channel), set ``batch.n``, ``batch.seq`` (sequence number of the first frame)
  and ``batch.t_ms`` (its epoch time). Returns ``batch.n``; 0 when the FIFO is empty. Never blocks.
- ``stop()``.

Sequence numbers count the frames the sensor produced, so frames lost to a FIFO overflow or a stalled bus show
up as a jump in ``seq``: the sampler counts them as dropped and records the gap. Loss is never silent.
"""
