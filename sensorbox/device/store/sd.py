"""The store on a microSD card (``board.sdcard``): its segments on the card, the rest on internal flash.

``board.sdcard`` names the card's slot as ``config_schema.sd_args`` reads it ("mmc", "mmc4": the SD/MMC slot 1 in 1 or
4-bit mode; "spi:SCK,MOSI,MISO,CS": SPI slot 2 on those GPIOs). At boot the card is mounted at ``MOUNT``
(``machine.SDCard`` and ``vfs.mount``: FAT, as cards come) and the resources' segment directories are made under
``MOUNT/sensorbox``; labels, the class table and the cursors stay in the store's root on internal flash, so one
class table names every prediction wherever its segment is. The free floor (``store.min_free_kb``) and the budgets
then apply to the card.

When the card is missing at boot, or a write or a sync fails and the card does not answer (removed, broken), the
segments go to internal flash again (``place``): the store counts what is there, closes what was open on the card
(its torn tail is the card's, as after a power cut) and goes on writing; sampling never stops. Every 5 s the
store tries the card again (``tick``); once it mounts, new segments go to the card and the segments written to
internal flash meanwhile (or before there was a card) are moved onto it (``run``: copied, synced, compared,
then removed from flash; a segment the card cannot take stays where it is). Nothing on internal flash is deleted
before its copy is on the card. ``/api/status`` -> ``store`` -> ``sd`` says where the segments are and why.

Loaded by the store when ``board.sdcard`` is set and kept (it is asked after failed writes); ``SDCard`` is the
firmware's (a test puts a double here: ``tests/support/fake_sdcard.py``, checked against MicroPython's stubs).
"""

import os

try:
    from machine import SDCard
except ImportError:  # the unix port (and boards without a slot): no card
    SDCard = None

ROOT = "/sd/sensorbox"  # (one string of more than 10 characters: the device interns neither part)
MOUNT = ROOT[:3]
_RETRY_MS = 5000


def _mount(dev, path):
    try:
        import vfs

        vfs.mount(dev, path)
    except ImportError:  # pragma: no cover - firmware before 1.23
        os.mount(dev, path)


def _umount(path):
    try:
        import vfs

        vfs.umount(path)
    except ImportError:  # pragma: no cover
        os.umount(path)


def start(spec, flash_stats):
    """The card of ``board.sdcard`` = ``spec`` (``recover.configure``; named ``start``, a name the firmware interns
    anyway: the store's warmed modules intern no name of this module's)."""
    return Card(spec, flash_stats)


class Card:
    def __init__(self, spec, flash_stats):
        self.spec = spec
        self.flash_stats = flash_stats  # internal flash's (the platform's)
        self.dev = None
        self.state = "not mounted"
        self.error = None
        self.on = False  # the segments are on the card
        self.since = None  # when the state last changed (epoch ms)
        self.removals = self.moved = self.move_errors = 0
        self.next_try = 0
        self.pending = False  # segments on internal flash to move onto the card

    # ---- the card ----

    def _open(self):
        """Mount the card; True when it is mounted and writable."""
        self._close()
        if SDCard is None:
            self.state, self.error = "unsupported", "this firmware has no machine.SDCard"
            return False
        from sensorbox.device import lazy

        sd_args = lazy.load("sensorbox.shared.config_schema").sd_args  # (the schema: not kept, ~12 KB)
        lazy.unload("sensorbox.shared.config_schema")
        try:
            self.dev = SDCard(**sd_args(self.spec))
            _mount(self.dev, MOUNT)
            for p in (ROOT,):
                try:
                    os.mkdir(p)
                except OSError:
                    os.stat(p)  # (there already: fine; not there and not made: the card is not usable)
            return True
        except (OSError, ValueError) as e:
            if self.state != "removed":  # (removed: it was there and went; missing: not there yet)
                self.state = "missing"
            self.error = "{}: {}".format(type(e).__name__, e)
            self._close()
            return False

    def _close(self):
        if self.dev is None:
            return
        try:
            _umount(MOUNT)
        except OSError:
            pass
        try:
            self.dev.deinit()
        except (OSError, AttributeError):
            pass
        self.dev = None

    def alive(self):
        """The card answers: its first block reads."""
        if self.dev is None:
            return False
        try:
            buf = bytearray(512)
            r = self.dev.readblocks(0, buf)
            return r is not False and (r is None or r is True or r == 0)  # (the firmware's: a bool; False == 0)
        except OSError:
            return False

    def stats(self):
        s = os.statvfs(MOUNT)
        return s[0] * s[2], s[0] * s[3]

    # ---- the store ----

    def boot(self, st):
        """At ``Store.open``, before the segments are counted: on the card if it mounts."""
        if self._open():
            self._use(st, True, "mounted at boot")
            self.pending = True  # (segments left on internal flash by an earlier boot: moved onto the card)
        else:
            st.log.warning("store", "SD card {} ({}): segments on internal flash".format(self.state, self.error))
            self.since = st.clock()
            self.next_try = st.clock() + _RETRY_MS

    def _use(self, st, card, why):
        self.on = card
        self.since = st.clock()
        if card:
            self.state, self.error = "mounted", None
            st.flash_stats = self.stats
        else:
            st.flash_stats = self.flash_stats
        place(st, ROOT if card else st.root)
        st.log.info("store", "segments on {} ({})".format("the SD card" if card else "internal flash", why))

    def check(self, st):
        """A write or a sync failed: if the segments are on the card and it does not answer, go to internal flash."""
        if not self.on or self.alive():
            return
        self.removals += 1
        st.log.error("store", "SD card not answering (removed?): segments on internal flash until it is back")
        for r in st.res:
            if r.f is not None:  # (the card's files: their tails are torn there, as after a power cut; the rows
                r.lost_rows += r.seg_rows - r.synced  # written since the last flush point are not on it)
            st._close_seg(r)
            if r.period:
                r.brows = 0  # (a rollup's staged rows are on the card: compacted when it is back)
        self._close()
        self.state, self.error = "removed", None
        self._use(st, False, "card removed")
        rescan(st)
        self.next_try = st.clock() + _RETRY_MS

    def tick(self, st):
        """The store service, at each flush point: while on internal flash, try the card every 5 s."""
        if self.on or st.clock() < self.next_try:
            return
        self.next_try = st.clock() + _RETRY_MS
        if not self._open():
            return
        st.flush()
        for r in st.res:  # what is open on internal flash is closed there (moved later, with the rest)
            st._close_seg(r)
        from sensorbox.device import lazy

        for r in st.res:
            if r.period and r.brows:  # staged rollup rows into a segment on flash first (moved with it)
                lazy.call("sensorbox.device.store.rollup", "flush", st, r)
        self._use(st, True, "card back in" if self.removals else "card inserted")
        rescan(st)
        self.pending = True

    def run(self, st):
        """Move the segments on internal flash onto the card, a step per 512 bytes (a generator, run by the store
        service while ``pending``); None when there is nothing to do."""
        if not self.pending or not self.on:
            return None
        self.pending = False
        return _moves(self, st)

    def status(self):
        return {"spec": self.spec, "state": self.state, "error": self.error, "segments_on": "sd" if self.on
                else "flash", "since": self.since, "removals": self.removals, "moved_segments": self.moved,
                "move_errors": self.move_errors}


def place(st, base):
    """Every resource's segment directory under ``base`` (``Res.dir``)."""
    for r in st.res:
        r.base = base


def rescan(st):
    """Count the segments where they are now (``recover.scan``)."""
    from sensorbox.device import lazy

    last = [r.last_t for r in st.res]
    lazy.call("sensorbox.device.store.recover", "scan", st)
    for i in range(len(st.res)):  # (the newest row written stays the newest, wherever it is)
        r = st.res[i]
        if last[i] is not None and (r.last_t is None or r.last_t < last[i]):
            r.last_t = last[i]
    st.changes += 1


def _moves(card, st):
    from sensorbox.device.store.core import seg_names

    buf = bytearray(512)
    for r in st.res:
        src = st.root + "/" + r.name
        dst = ROOT + "/" + r.name
        try:
            names = []
            for e in os.ilistdir(src):
                n = e[0]
                if n.endswith(".seg") and n[:-4].isdigit():
                    names.append(int(n[:-4]))
        except OSError:
            continue
        have = seg_names(r)
        for name in names:
            if not card.on:
                return
            a = "{}/{}.seg".format(src, name)
            dn = _free_name(name, have)
            b = "{}/{}.seg".format(dst, dn)
            size = 0
            try:
                with open(a, "rb") as fa:
                    with open(b + ".tmp", "wb") as fb:
                        while True:
                            n = fa.readinto(buf)
                            if not n:
                                break
                            fb.write(memoryview(buf)[:n] if n < 512 else buf)
                            size += n
                            yield
                        fb.flush()
                if os.stat(b + ".tmp")[6] != size or os.stat(a)[6] != size:
                    raise OSError("sizes differ")
                os.rename(b + ".tmp", b)
                os.remove(a)
            except OSError as e:
                card.move_errors += 1
                st.log.warning("store", "{}: segment {} not moved to the SD card ({})".format(r.name, name, e))
                try:
                    os.remove(b + ".tmp")
                except OSError:
                    pass
                if not card.alive():
                    card.check(st)
                    return
                continue
            card.moved += 1
            r.bytes += size
            r.nseg += 1
            have.append(dn)
            if r.first is None or dn < r.first:
                r.first = dn
            st.changes += 1
            yield
    return


def _free_name(name, names):
    while name in names:  # (a segment of the same start on both: the moved one a ms later)
        name += 1
    return name
