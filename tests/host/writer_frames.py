# Shared by the MicroPython writers of the proof suite (store_kill_writer.py, powercut_run.py; their directory is
# on their import path). Every value is a function of its sequence number, so any stored row can be checked on
# its own: accel frame seq (t = T0 + 20*seq): x = seq % 30000, y = -((seq * 40503) % 20000), z = (seq * 7) % 32000
# (x and z code into a few bits a frame, y hardly at all); seqs with seq % 997 < 3 are never written (gaps).


def fill(buf, seq, want):
    """Frames seq, seq + 1, ... into ``buf`` (int16 x, y, z), at most ``want``, stopping before a gap; returns
    how many."""
    n = 0
    while n < want and seq % 997 >= 3:
        buf[3 * n] = seq % 30000
        buf[3 * n + 1] = -((seq * 40503) % 20000)  # (scrambled: a column that does not code smaller)
        buf[3 * n + 2] = (seq * 7) % 32000
        n += 1
        seq += 1
    return n


T0 = 1700000000000


def batch(st, buf, mv, seq, want, gen, event):
    """Append up to ``want`` frames from ``seq`` (as ``fill``), the prediction at the last one's time
    ((seq % 7, seq % 1000)) and, with ``event``, the event {"type": "tick", "seq": seq}. Returns (the next seq,
    that time, or None when the batch was empty: ``seq`` is at a gap)."""
    n = fill(buf, seq, want)
    if not n:
        return seq, None
    st.append_frames(T0 + 20 * seq, seq, gen, 50, mv, n)
    seq += n
    t = T0 + 20 * (seq - 1)
    st.on_bus("predictions", t, ((seq - 1) % 7, (seq - 1) % 1000))
    if event:
        st.on_bus("events", t, {"type": "tick", "seq": seq - 1})
    return seq, t
