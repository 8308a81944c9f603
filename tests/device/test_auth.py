"""Admin password: hashed at rest, verified, wrong guesses locked out with a doubling delay."""

import binascii
import json
import time

from devtest import quiet_log, tmpdir
from sensorbox.device.auth import Auth


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
    assert a.check_basic(_basic("admin", "correct horse")) == "admin"
    b = Auth(path, quiet_log(), "ignored once the file exists")
    assert b.check_basic(_basic("admin", "correct horse")) == "admin"


def test_generated_password_is_random_and_works():
    a1 = Auth(tmpdir("a") + "/auth.json", quiet_log())
    a2 = Auth(tmpdir("b") + "/auth.json", quiet_log())
    assert len(a1.generated_password) == 16 and a1.generated_password != a2.generated_password
    assert a1.check_basic(_basic("admin", a1.generated_password)) == "admin"


def test_wrong_credentials_and_lockout():
    log = quiet_log()
    a = Auth(tmpdir() + "/auth.json", log, "pw")
    assert a.check_basic(None) is None
    assert a.check_basic("Bearer abc") is None
    assert a.check_basic("Basic !!!notbase64") is None
    assert a.check_basic(_basic("root", "pw")) is None  # wrong user: a failure
    assert a.check_basic(_basic("admin", "pw")) == "wait"  # locked for 500 ms
    time.sleep_ms(550)
    assert a.check_basic(_basic("admin", "nope")) is None
    assert a.check_basic(_basic("admin", "pw")) == "wait"  # now 1 s
    time.sleep_ms(1050)
    assert a.check_basic(_basic("admin", "pw")) == "admin"
    assert any("failed login" in e["msg"] for e in log.entries())


def test_lockout_starts_over_after_a_quiet_minute():
    # A stranger's guess now and then must not keep the owner out: after a quiet minute past the last lockout
    # the wait is back to 500 ms instead of doubling on.
    a = Auth(tmpdir() + "/auth.json", quiet_log(), "pw")
    for _ in range(5):
        a._fail_until = time.ticks_ms()  # (each lockout just over)
        assert a.check_basic(_basic("admin", "nope")) is None
    assert a._failures == 5 and time.ticks_diff(a._fail_until, time.ticks_ms()) > 7000  # 8 s
    a._fail_until = time.ticks_add(time.ticks_ms(), -61000)  # ...and a quiet minute since
    assert a.check_basic(_basic("admin", "nope")) is None
    assert a._failures == 1 and time.ticks_diff(a._fail_until, time.ticks_ms()) <= 500


def test_corrupt_auth_file_sets_a_new_password():
    path = tmpdir() + "/auth.json"
    with open(path, "w") as f:
        f.write("{garbage")
    log = quiet_log()
    a = Auth(path, log)
    assert a.generated_password and a.check_basic(_basic("admin", a.generated_password)) == "admin"
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
    assert any("tokens.json is unreadable" in e["msg"] for e in log.entries())
    with open(d + "/tokens.json.bad") as f:
        assert f.read() == '[{"id": 1, "na'


def test_csrf_compare():
    from sensorbox.device.http import authz

    t = authz.csrf_token("x" * 32)
    assert authz._same(t, t) and not authz._same(t, t[:-1] + ("1" if t[-1] == "0" else "0")) and not authz._same(t, t[:-1]) and \
        not authz._same("", t)
