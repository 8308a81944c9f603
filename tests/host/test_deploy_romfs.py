"""Where deploy puts the bundle's code (``deploy.use_romfs``) and the heap it then asks of the board: a ROMFS
image when the firmware has a romfs partition it fits in (or ``--romfs``), the file system otherwise (stock
firmware) or with ``--no-romfs``; with the code in ROMFS the board needs ``bundle.ROMFS_APP_HEAP``, less than
``APP_HEAP``. (tests/host/test_deploy.py runs deploy itself against the unix port, which has no partition.)"""

import pytest

from sensorbox.host import boards, bundle, deploy


def test_the_code_goes_to_romfs_when_the_firmware_has_a_partition_it_fits_in():
    stock = {"romfs": 0}
    part = {"romfs": 1, "romfs_size": 256 * 1024}
    assert deploy.use_romfs(None, stock, 150 * 1024) is False
    assert deploy.use_romfs(None, part, 150 * 1024) is True
    assert deploy.use_romfs(None, part, 300 * 1024) is False  # the image would not fit
    assert deploy.use_romfs(None, part, None) is False  # no image built
    assert deploy.use_romfs(False, part, 150 * 1024) is False  # --no-romfs
    assert deploy.use_romfs(True, stock, 150 * 1024) is True  # --romfs: deploy then refuses a board without one


def test_code_in_romfs_needs_less_heap_of_the_board():
    assert deploy.app_heap_bytes(4, bundle.ROMFS_APP_HEAP) < deploy.app_heap_bytes(4)
    prof = dict(boards.PROFILES["esp32"], name="esp32")
    mpy = boards.MPY_VERSION | ((boards.ARCHS.index(prof["arch"]) << 2 | boards.MPY_SUB_VERSION) << 8)
    need_fs = deploy.app_heap_bytes(4)
    need_rom = deploy.app_heap_bytes(4, bundle.ROMFS_APP_HEAP)
    # enough heap with the code in ROMFS, not with it on the file system
    info = {"version": list(boards.MIN_MICROPYTHON), "mpy": mpy, "word": 4, "heap_free": (need_fs + need_rom) // 2}
    assert boards.board_abi(mpy)[1] == prof["arch"]
    deploy.check_board(prof, info, log=lambda s: None, romfs=True)
    with pytest.raises(deploy.DeployError, match="bundle.APP_HEAP"):
        deploy.check_board(prof, info, log=lambda s: None)
