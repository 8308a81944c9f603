"""The board test doubles (tests/support/board: ``network``, ``machine``, ``esp32``) behave as MicroPython's
ESP32 port documents, and ``platform/esp32.py`` runs unchanged against them (clock from the RTC, id, watchdog)."""

import os
import time

import _board
from devtest import tmpdir

BOARD = True  # tests/support/board first on the path


def _refused(call, exc, why):
    """``call()`` raises ``exc`` (as the firmware does: ``why``)."""
    try:
        call()
    except exc:
        return
    raise AssertionError(why)


def _air(aps, **kw):
    d = {"aps": aps, "connect_ms": 50}
    d.update(kw)
    _board.save("air.json", d)
    import network

    network._air = None


def test_wlan_station_scan_connect_and_failures():
    import network

    _air([{"ssid": "home", "key": "secret123", "rssi": -52, "bssid": "aabbccddeeff", "channel": 6, "ip": "10.0.0.7"},
          {"ssid": "hidden", "key": "", "rssi": -80, "hidden": 1}])
    sta = network.WLAN(network.WLAN.IF_STA)
    assert network.WLAN(network.STA_IF) is sta  # one station interface, as on the board
    _refused(lambda: sta.scan(), OSError, "scan needs an active station")
    _refused(lambda: sta.connect("home", "secret123"), OSError, "connect needs an active station")
    sta.active(True)
    found = sta.scan()
    assert found[0] == (b"home", bytes.fromhex("aabbccddeeff"), 6, -52, 3, 0) and found[1][0] == b"" and found[1][5] == 1
    assert sta.status() == network.STAT_IDLE and not sta.isconnected()
    sta.connect("home", "wrong-key")
    assert sta.status() == network.STAT_CONNECTING
    time.sleep_ms(60)
    assert sta.status() == network.STAT_WRONG_PASSWORD and not sta.isconnected()
    sta.connect("elsewhere", "x")
    time.sleep_ms(60)
    assert sta.status() == network.STAT_NO_AP_FOUND
    _refused(lambda: sta.status("rssi"), OSError, "no RSSI without a link")
    sta.connect("home", "secret123")
    time.sleep_ms(60)
    assert sta.isconnected() and sta.status() == network.STAT_GOT_IP
    assert sta.status("rssi") == -52 and sta.ifconfig()[0] == "10.0.0.7"
    # the access point goes away: the link is lost and the driver keeps trying; it comes back: connected again
    _air([])
    assert not sta.isconnected() and sta.status() == network.STAT_CONNECTING
    _air([{"ssid": "home", "key": "secret123", "rssi": -60}])
    time.sleep_ms(60)
    assert sta.isconnected() and sta.status("rssi") == -60
    sta.disconnect()
    assert sta.status() == network.STAT_IDLE


def test_wlan_access_point_and_hostname():
    import network

    network._reset()
    network.hostname("mybox")
    ap = network.WLAN(network.AP_IF)
    ap.active(True)
    assert network.mdns_hostname == "mybox"  # mDNS takes the name the first interface came up with
    network.hostname("later")
    assert network.hostname() == "later" and network.mdns_hostname == "mybox"
    _refused(lambda: network.hostname("x" * 33), ValueError, "too long")
    _refused(lambda: ap.config(ssid="sensorbox-1234", key="short", security=network.AUTH_WPA2_PSK), OSError,
             "WPA2 needs 8 characters")
    assert ap.config("security") == network.AUTH_OPEN
    ap.config(ssid="sensorbox-1234", key="longenough", security=network.AUTH_WPA2_PSK)
    assert ap.config("ssid") == "sensorbox-1234" and ap.config("security") == 3
    assert ap.ifconfig()[0] == "192.168.4.1"
    _refused(lambda: ap.connect("home", "x"), OSError, "only a station connects")
    _refused(lambda: ap.config("ssid", "channel"), TypeError, "one query at a time")


def test_wdt_rtc_pin_and_reset_state_outlive_a_reset():
    import machine

    w = machine.WDT(timeout=2000)
    w.feed()
    with open(_board.path("wdt")) as f:
        assert f.read() == "2 2000"
    _refused(lambda: machine.WDT(timeout=0), ValueError, "timeout too short")
    rtc = machine.RTC()
    assert rtc.datetime()[0] == 2000  # power-on: the RTC starts in 2000
    rtc.datetime((2026, 12, 5, 5, 21, 30, 0, 0))
    dt = machine.RTC().datetime()  # a new object (e.g. after a reset) reads the same clock
    assert dt[:3] == (2026, 12, 5) and dt[3] == 5 and dt[4:6] == (21, 30)
    rtc.memory(b"boots=3")
    assert machine.RTC().memory() == b"boots=3"
    machine.power_cycle()
    assert machine.RTC().datetime()[0] == 2000 and machine.RTC().memory() == b""
    assert machine.Pin(0, machine.Pin.IN, machine.Pin.PULL_UP).value() == 1
    _board.save("pins.json", {"0": 0})  # the button held down
    assert machine.Pin(0, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0
    assert len(machine.unique_id()) == 6 and machine.reset_cause() == machine.PWRON_RESET


def test_partition_ota_and_bootloader_rollback():
    import esp32

    run = esp32.Partition(esp32.Partition.RUNNING)
    assert run.info()[4] == "ota_0" and run.info()[0] == esp32.Partition.TYPE_APP
    nxt = run.get_next_update()
    assert nxt.info()[4] == "ota_1" and nxt.ioctl(4, 0) == 0x180000 // 4096 and nxt.ioctl(5, 0) == 4096
    assert [p.info()[4] for p in esp32.Partition.find(esp32.Partition.TYPE_APP)] == ["ota_0", "ota_1"]
    nxt.writeblocks(0, b"\x00" * 4096)
    # not an image (no 0xE9 header): ESP-IDF refuses it
    _refused(lambda: nxt.set_boot(), OSError, "set_boot accepted a non-image")
    img = bytearray(b"\xe9" + bytes(4095))
    nxt.writeblocks(0, img)
    back = bytearray(4096)
    nxt.readblocks(0, back)
    assert back == img
    nxt.set_boot()
    assert esp32.Partition(esp32.Partition.BOOT).info()[4] == "ota_1"
    # reset: the new app runs on trial; a second reset without mark_app_valid_cancel_rollback rolls back
    assert esp32.boot() == "ota_1"
    assert esp32.boot() == "ota_0"
    nxt.set_boot()
    esp32.running = esp32.boot()
    esp32.Partition.mark_app_valid_cancel_rollback()
    assert esp32.boot() == "ota_1"  # valid: it stays


def test_esp32_platform_runs_on_the_doubles():
    import machine

    from sensorbox.device.platform import esp32 as plat_mod

    d = tmpdir("data")
    machine.RTC().datetime((2026, 12, 5, 5, 12, 0, 0, 0))
    p = plat_mod.Platform(d)
    t = p.epoch_ms()
    assert abs(t - 1796472000000) < 5000, t  # 2026-12-05 12:00 UTC, read from the RTC
    assert p.unique_id() == "240ac4123456"
    total, free = p.flash_stats()
    assert total > free > 0
    w = p.watchdog(30000)
    w.feed()
    assert machine.fed >= 2
    p.set_time(1893456000000)  # 2030-01-01 from NTP: the RTC and the wall clock follow
    assert machine.RTC().datetime()[0] == 2030 and p.epoch_ms() >= 1893456000000
    assert p.rtc_ms() // 1000 == 1893456000
    assert os.stat(d)[0] & 0x4000
