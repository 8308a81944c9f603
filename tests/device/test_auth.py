"""Admin password: hashed at rest, verified, wrong guesses locked out with a doubling delay per client address."""

import binascii
import json
import time

import asyncio
from devtest import inner, quiet_log, tmpdir
from sensorbox.device.auth import Auth


def check(a, header):
    return asyncio.run(a.check_basic(header))


def _basic(user, pw):
    return "Basic " + binascii.b2a_base64("{}:{}".format(user, pw).encode()).decode().strip()


def test_given_password_is_stored_as_salted_hash_only():
    path = tmpdir() + "/auth.json"
    a = Auth(path, quiet_log(), "correct horse")
    assert a.generated_password is None
    with open(path) as f:
        text = f.read()
    assert "correct horse" not in text
    d = json.loads(text)
    assert len(binascii.unhexlify(d["salt"])) == 16 and d["iterations"] >= 1000
    assert check(a, _basic("admin", "correct horse")) == "admin"
    b = Auth(path, quiet_log(), "ignored once the file exists")
    assert check(b, _basic("admin", "correct horse")) == "admin"


def test_generated_password_is_random_and_works():
    a1 = Auth(tmpdir("a") + "/auth.json", quiet_log())
    a2 = Auth(tmpdir("b") + "/auth.json", quiet_log())
    assert len(a1.generated_password) == 16 and a1.generated_password != a2.generated_password
    assert check(a1, _basic("admin", a1.generated_password)) == "admin"


def test_wrong_credentials_and_lockout():
    log = quiet_log()
    a = Auth(tmpdir() + "/auth.json", log, "pw")
    assert check(a, None) is None
    assert check(a, "Bearer abc") is None
    assert check(a, "Basic !!!notbase64") is None
    assert check(a, _basic("root", "pw")) is None  # wrong user: a failure
    assert check(a, _basic("admin", "pw")) == "wait"  # locked for 500 ms
    time.sleep_ms(550)
    assert check(a, _basic("admin", "nope")) is None
    assert check(a, _basic("admin", "pw")) == "wait"  # now 1 s
    time.sleep_ms(1050)
    assert check(a, _basic("admin", "pw")) == "admin"
    assert any("failed login" in e["msg"] for e in log.entries())


def test_checking_yields_and_guesses_sent_together_meet_the_lockout():
    a = Auth(tmpdir() + "/auth.json", quiet_log(), "pw")
    turns = [0]

    async def ticker():
        while True:
            turns[0] += 1
            await asyncio.sleep_ms(0)

    async def main():
        t = asyncio.create_task(ticker())
        got = await asyncio.gather(*[a.check_basic(_basic("admin", "guess%d" % i)) for i in range(3)])
        ok = await a.check_basic(_basic("admin", "pw"))
        t.cancel()
        return got, ok

    got, ok = asyncio.run(main())
    # the first guess was hashed (in slices: other tasks ran meanwhile); the others waited for it, then met the lockout
    assert got == [None, "wait", "wait"], got
    assert ok == "wait" and turns[0] >= 7, turns  # 2000 hashes in slices of 250
    assert inner(a, "_fails")[inner(a, "_find")(None)] == 1


def test_lockout_starts_over_after_a_quiet_minute():
    # A stranger's guess now and then must not keep the owner out: after a quiet minute past the last lockout
    # the wait is back to 500 ms instead of doubling on.
    a = Auth(tmpdir() + "/auth.json", quiet_log(), "pw")
    for _ in range(5):
        assert check(a, _basic("admin", "nope")) is None
        i = inner(a, "_find")(None)
        inner(a, "_until")[i] = time.ticks_ms()  # (each lockout just over)
    assert check(a, _basic("admin", "nope")) is None
    assert inner(a, "_fails")[i] == 6 and time.ticks_diff(inner(a, "_until")[i], time.ticks_ms()) > 15000  # 16 s
    inner(a, "_until")[i] = time.ticks_add(time.ticks_ms(), -61000)  # ...and a quiet minute since
    assert check(a, _basic("admin", "nope")) is None
    assert inner(a, "_fails")[i] == 1 and time.ticks_diff(inner(a, "_until")[i], time.ticks_ms()) <= 500


def test_lockout_is_per_client_address():
    # Issue 11.3: a stranger guessing from one address must not keep the owner out from another, even with a
    # credential this boot has not verified yet; the stranger's own address stays locked.
    a = Auth(tmpdir() + "/auth.json", quiet_log(), "pw")
    stranger, owner = b"\x0a\x00\x00\x07", b"\x0a\x00\x00\x02"

    async def main():
        assert await a.check_basic(_basic("admin", "guess"), stranger) is None
        assert await a.check_basic(_basic("admin", "guess2"), stranger) == "wait"
        assert await a.check_basic(_basic("admin", "pw"), owner) == "admin"
        assert await a.check_basic(_basic("admin", "pw"), stranger) == "admin"  # (verified: accepted anywhere)
        assert await a.check_basic(_basic("admin", "guess3"), stranger) == "wait"
        assert await a.check_basic(_basic("admin", "nope"), owner) is None  # the owner's own typo...
        assert await a.check_basic(_basic("admin", "nope2"), owner) == "wait"  # ...locks only the owner's address
        assert await a.check_basic(_basic("admin", "x"), "192.168.1.9") is None  # ESP32 gives addresses as str

    asyncio.run(main())


def test_throttle_table_is_bounded():
    # Addresses are remembered in a fixed table: a flood of addresses costs nothing, and each new one takes the
    # entry of the address that failed longest ago.
    a = Auth(tmpdir() + "/auth.json", quiet_log(), "pw")

    async def main():
        for n in range(40):
            assert await a.check_basic(_basic("admin", "guess"), bytes((10, 0, n // 256, n % 256))) is None
        assert len(inner(a, "_peer")) == 8 and inner(a, "_peer").count(None) == 0
        assert await a.check_basic(_basic("admin", "again"), bytes((10, 0, 0, 39))) == "wait"  # the latest: held
        assert await a.check_basic(_basic("admin", "again"), bytes((10, 0, 0, 0))) is None  # the first: forgotten

    asyncio.run(main())


def test_a_new_password_ends_sessions_and_changes_the_generation():
    a = Auth(tmpdir() + "/auth.json", quiet_log(), "pw")
    a.sessions = [[b"k" * 32, 0]]
    g = a.generation
    a.set_password("new password")
    assert a.generation == g + 1 and a.sessions == []
    assert check(a, _basic("admin", "pw")) is None
    time.sleep_ms(550)
    assert check(a, _basic("admin", "new password")) == "admin"


class _Req:
    def __init__(self, auth_header=None, cookie=None):
        self.headers = {"Authorization": auth_header} if auth_header else {}
        self.cookies = {"sb_session": cookie} if cookie else {}


class _Ring:
    head = 0
    rate_hz = 50


class _Sensor:
    ring = _Ring()
    generation = 1

    def pump(self, batches=0):  # sampler.Sensor.pump: read the FIFO now (nothing to read here)
        return 0


class _Device:
    pipeline = None

    def __init__(self, auth):
        self.auth = auth
        self.sensors = {"accel": _Sensor()}


def test_a_live_stream_holds_only_while_its_credential_does():
    # Issue 11.6: a stream opened with a token ends when the token is revoked, one opened by the UI's session when
    # it logs out, one opened with the password (Basic) when the password changes.
    import hashlib

    from sensorbox.device.http import device_api, live

    def stream(req):  # as GET /api/live: device_api works out the credential, live keeps it
        c = inner(device_api, "_live")(dev, req)[0]
        live.streams.remove(c)
        return c

    a = Auth(tmpdir() + "/auth.json", quiet_log(), "pw")
    secret = "0123456789abcdef0123456789abcdef"
    a.tokens = [{"id": 3, "name": "t", "scope": "read",
                 "hash": binascii.hexlify(hashlib.sha256(secret.encode()).digest()).decode()}]
    sid = "s" * 32
    a.sessions = [[hashlib.sha256(sid.encode()).digest(), time.ticks_ms()]]
    dev = _Device(a)
    by_token = stream(_Req("Bearer sb_3_" + secret))
    by_session = stream(_Req(cookie=sid))
    by_basic = stream(_Req(_basic("admin", "pw")))
    assert by_token.valid() and by_session.valid() and by_basic.valid()
    a.tokens = a.tokens + [{"id": 4, "name": "u", "scope": "admin", "hash": "00"}]  # another token made: holds
    assert by_token.valid()
    a.tokens = a.tokens[1:]  # revoked
    assert not by_token.valid() and by_session.valid() and by_basic.valid()
    a.sessions = []  # logged out
    assert not by_session.valid() and by_basic.valid()
    a.set_password("another")
    assert not by_basic.valid()


def test_corrupt_auth_file_sets_a_new_password():
    path = tmpdir() + "/auth.json"
    with open(path, "w") as f:
        f.write("{garbage")
    log = quiet_log()
    a = Auth(path, log)
    assert a.generated_password and check(a, _basic("admin", a.generated_password)) == "admin"
    assert any("unreadable" in e["msg"] for e in log.entries())
    with open(path + ".bad") as f:  # kept for inspection, not overwritten
        assert f.read() == "{garbage"


def test_unreadable_tokens_file_is_kept_aside_not_overwritten():
    from sensorbox.device.http import authz

    d = tmpdir()
    with open(d + "/tokens.json", "w") as f:
        f.write('[{"id": 1, "na')  # cut off by a power loss, say
    log = quiet_log()
    a = Auth(d + "/auth.json", log, "pw")
    assert authz.tokens(a) == []
    assert any("tokens.json: not JSON" in e["msg"] for e in log.entries())
    assert "tokens.json.bad" in log.files[-1]  # in /api/status -> files
    with open(d + "/tokens.json.bad") as f:
        assert f.read() == '[{"id": 1, "na'


def test_tokens_that_are_not_tokens_are_left_out_and_the_rest_kept():
    import json

    from sensorbox.device.http import authz

    d = tmpdir()
    good = {"id": 2, "name": "b", "scope": "read", "hash": "ab" * 32}
    with open(d + "/tokens.json", "w") as f:  # one without its hash, one with a wrong type, one good
        f.write(json.dumps([{"id": 1, "name": "a", "scope": "admin"}, {"id": "3", "name": "c", "scope": "read",
                                                                          "hash": "cd" * 32}, good]))
    log = quiet_log()
    a = Auth(d + "/auth.json", log, "pw")
    assert authz.tokens(a) == [good]
    assert authz.bearer_scope(a, "Bearer sb_1_x") is None  # no 500: the entry is gone
    with open(d + "/tokens.json") as f:
        assert json.load(f) == [good]  # written again without them; the file as it was is tokens.json.bad
    with open(d + "/tokens.json.bad") as f:
        assert len(json.load(f)) == 3
    a.tokens = None
    assert authz.tokens(a) == [good] and len(log.files) == 1


def test_csrf_compare():
    from sensorbox.device.http import authz

    t = authz.csrf_token("x" * 32)
    same = inner(authz, "_same")
    assert same(t, t) and not same(t, t[:-1] + ("1" if t[-1] == "0" else "0")) and not same(t, t[:-1]) and \
        not same("", t)


def test_sessions_outlive_a_planned_restart_once():
    import os

    from sensorbox.device.http import authz

    d = tmpdir()
    a = Auth(d + "/auth.json", quiet_log(), "pw")
    sid = "s" * 32
    authz.sessions(a).append([__import__("hashlib").sha256(sid.encode()).digest(), time.ticks_ms()])
    authz.sessions(a, True)  # what POST /api/restart does before the reset
    b = Auth(d + "/auth.json", quiet_log(), "pw")  # the next start
    assert authz.session_ok(b, sid) and not authz.session_ok(b, "t" * 32)
    assert "sessions.json" not in os.listdir(d)  # read once
    c = Auth(d + "/auth.json", quiet_log(), "pw")  # a start without a planned restart before it: none
    assert not authz.session_ok(c, sid)
    for bad in ('{"t": 1, "s": ["zz"', '{"t": "x", "s": 5}', "\x00\xff", '{"s": ["00"]}'):  # torn or foreign: none
        with open(d + "/sessions.json", "w") as f:
            f.write(bad)
        e = Auth(d + "/auth.json", quiet_log(), "pw")
        assert authz.sessions(e) == [] and "sessions.json" not in os.listdir(d), bad
    with open(d + "/sessions.json", "w") as f:  # saved longer ago than a session may idle: dropped
        f.write(json.dumps({"t": time.time() - 13 * 3600, "s": [binascii.hexlify(b"\x01" * 32).decode()]}))
    assert authz.sessions(Auth(d + "/auth.json", quiet_log(), "pw")) == []


def test_restored_sessions_keep_the_idle_time_they_had_left_and_only_after_a_quick_restart():
    import hashlib
    import os

    from sensorbox.device.http import authz

    d = tmpdir()
    hour = 3600 * 1000

    def saved(idle_ms):
        """Sessions last used ``idle_ms`` ago (one each), saved as POST /api/restart saves them."""
        a = Auth(d + "/auth.json", quiet_log(), "pw")
        now = time.ticks_ms()
        for i, ms in enumerate(idle_ms):
            authz.sessions(a).append([hashlib.sha256(str(i).encode() * 32).digest(), time.ticks_add(now, -ms)])
        authz.sessions(a, True)
        with open(d + "/sessions.json") as f:
            return json.load(f)

    def restored():
        return authz.sessions(Auth(d + "/auth.json", quiet_log(), "pw"))

    # one used a minute ago, one 11.5 h ago, one 13 h ago (expired: not saved)
    f = saved([60000, 23 * hour // 2, 13 * hour])
    assert len(f["s"]) == 2, f
    ss = restored()
    assert len(ss) == 2 and "sessions.json" not in os.listdir(d)
    now = time.ticks_ms()
    idle = [time.ticks_diff(now, s[1]) for s in ss]
    # the idle time each had, not a fresh 12 h: the second expires in half an hour as it would have
    assert 60000 <= idle[0] < 70000 and 23 * hour // 2 <= idle[1] < 23 * hour // 2 + 10000, idle

    def with_clock(shift_s):
        f = saved([60000])
        f["t"] += shift_s  # as if saved shift_s later (a clock gone back) or earlier (a long time ago)
        with open(d + "/sessions.json", "w") as fh:
            json.dump(f, fh)
        return restored()

    assert len(with_clock(-30)) == 1  # back within seconds: kept
    assert with_clock(-authz.RESTART_S - 5) == []  # back much later than a restart takes: dropped
    assert with_clock(-3 * hour // 1000) == []  # hours later, though the session had 12 h left: dropped
    assert with_clock(3600) == []  # the clock reads earlier than at the save (a board's after a power cut): dropped
    assert "sessions.json" not in os.listdir(d)
