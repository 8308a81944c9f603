"""Admin password: hashed at rest, verified, wrong guesses locked out with a doubling delay."""

import binascii
import json
import time

import asyncio
from devtest import quiet_log, tmpdir
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
    assert a._failures == 1


def test_lockout_starts_over_after_a_quiet_minute():
    # A stranger's guess now and then must not keep the owner out: after a quiet minute past the last lockout
    # the wait is back to 500 ms instead of doubling on.
    a = Auth(tmpdir() + "/auth.json", quiet_log(), "pw")
    for _ in range(5):
        a._fail_until = time.ticks_ms()  # (each lockout just over)
        assert check(a, _basic("admin", "nope")) is None
    assert a._failures == 5 and time.ticks_diff(a._fail_until, time.ticks_ms()) > 7000  # 8 s
    a._fail_until = time.ticks_add(time.ticks_ms(), -61000)  # ...and a quiet minute since
    assert check(a, _basic("admin", "nope")) is None
    assert a._failures == 1 and time.ticks_diff(a._fail_until, time.ticks_ms()) <= 500


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
    assert authz._same(t, t) and not authz._same(t, t[:-1] + ("1" if t[-1] == "0" else "0")) and not authz._same(t, t[:-1]) and \
        not authz._same("", t)
