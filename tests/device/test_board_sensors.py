"""platform/esp32.py's make_sensor: which driver each config gets, with fakes of the board's I2C and I2S."""

from devtest import FakeClock, StubConfig, quiet_log
import fake_i2s
from fake_i2s import FakeI2S
from fake_lsm6ds3 import FakeLSM6DS3
from sensorbox.device.platform.esp32 import make_sensor


class FakeMachine:
    """The parts of ``machine`` make_sensor uses; records how the buses were opened."""

    def __init__(self, clock, who=0x6A, addr=0x6A, present=True):
        self.clock = clock
        self.opened = []
        self.part = FakeLSM6DS3(clock, addr=addr, who=who, present=present)
        machine = self

        class I2S:
            RX = 1
            MONO = fake_i2s.MONO
            STEREO = fake_i2s.STEREO

            def __new__(cls, id, sck, ws, sd, mode, bits, format, rate, ibuf):
                machine.opened.append(("I2S", id, sck, ws, sd, mode, bits, format, rate, ibuf))
                return FakeI2S(machine.clock, rate, format, bits, ibuf)

        self.I2S = I2S

    def Pin(self, n):
        return ("pin", n)

    def I2C(self, id, sda, scl, freq):
        self.opened.append(("I2C", id, sda, scl, freq))
        return self.part


def _config(**kw):
    base = dict(board__i2c_sda=21, board__i2c_scl=22, board__i2s_sck=14, board__i2s_ws=15, board__i2s_sd=32)
    base.update(kw)
    return StubConfig(**base)


def test_defaults_wire_no_sensor_and_say_why():
    clock = FakeClock()
    log = quiet_log()
    m = FakeMachine(clock)
    assert make_sensor("accel", StubConfig(), log, clock, m) is None
    assert make_sensor("mic", StubConfig(), log, clock, m) is None
    assert m.opened == []
    text = " ".join(str(e) for e in log.entries())
    assert "board.i2c_sda" in text and "board.i2s_sck" in text, text


def test_accel_on_the_configured_bus_and_address():
    clock = FakeClock()
    m = FakeMachine(clock, addr=0x6B)
    drv = make_sensor("accel", _config(accel__i2c_addr=107, board__i2c_freq=100000), quiet_log(), clock, m)
    assert drv is not None and drv.part == "LSM6DS3TR-C" and drv.addr == 0x6B
    assert m.opened == [("I2C", 0, ("pin", 21), ("pin", 22), 100000)]


def test_absent_or_foreign_part_is_left_out_with_a_warning():
    clock = FakeClock()
    for m, words in ((FakeMachine(clock, present=False), "no answer"), (FakeMachine(clock, who=0x33), "0x33")):
        log = quiet_log()
        assert make_sensor("accel", _config(), log, clock, m) is None
        text = " ".join(str(e) for e in log.entries())
        assert words in text, text
    # The microphone is wired independently of the accelerometer.
    assert make_sensor("mic", _config(), quiet_log(), clock, FakeMachine(clock, present=False)) is not None


def test_mic_opens_i2s_rx_32_bit_at_the_configured_rate_and_slot():
    clock = FakeClock()
    for channel, fmt in (("left", fake_i2s.MONO), ("right", fake_i2s.STEREO)):
        m = FakeMachine(clock)
        drv = make_sensor("mic", _config(mic__rate_hz=8000, mic__channel=channel), quiet_log(), clock, m)
        drv.start()
        assert m.opened == [("I2S", 0, ("pin", 14), ("pin", 15), ("pin", 32), 1, 32, fmt, 8000, 8192)]
        drv.stop()
