"""MicroPython manifest of the sensorbox device package (MicroPython docs, "MicroPython manifest files").

Freeze the device app into a firmware of your own (frozen code costs no heap: docs/heap.md), from a manifest
of yours next to the board's:

    include("$(PORT_DIR)/boards/manifest.py")
    include("/path/to/sensorbox")        # this file

    make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/your/manifest.py

It lists the modules the ESP32 bundle (``sensorbox build esp32``, ``sensorbox/host/bundle.py``) ships, and the
device's ``main.py`` (frozen as ``main``, which a MicroPython board runs at boot). What is not Python stays on the
file system: ``sensorbox deploy`` copies the web UI (``www/``) and the default model (``models/default``).
Differences from the bundle: frozen from source, names are not shortened (``host/names.py``: a few KB more for
interned names) and ``http/refuse.py`` has an empty route list (``_ROUTES``, which the bundle writes in from the
OpenAPI document: unknown methods then get 404, not 405 with ``Allow``). No dependency: the device needs only
MicroPython's own modules; emlearn-micropython's native modules are optional (``require`` nothing).
``tests/host/test_manifest.py`` checks this list against the bundle's.
"""

metadata(
    version="0.1.0",
    description="sensorbox device app: sampling, on-flash store, analysis, web UI/API, MQTT and webhooks",
    license="MIT",
)

package(
    "sensorbox",
    files=(
        "__init__.py",
        "device/app.py",
        "device/auth.py",
        "device/auth_check.py",
        "device/boot.py",
        "device/bootstate.py",
        "device/config.py",
        "device/config_file.py",
        "device/config_running.py",
        "device/factory.py",
        "device/files.py",
        "device/lazy.py",
        "device/log.py",
        "device/log_read.py",
        "device/ota.py",
        "device/status.py",
        "device/supervisor.py",
        "shared/__init__.py",
        "shared/config_schema.py",
        "shared/dsp_setup.py",
        "shared/features.py",
        "shared/integration_settings.py",
        "shared/kernels.py",
        "shared/kernels_emlearn.py",
        "shared/kernels_py.py",
        "shared/kernels_sound.py",
        "shared/kernels_viper.py",
        "shared/model.py",
        "shared/neighbors.py",
        "shared/neighbors_csv.py",
        "shared/npy.py",
        "shared/soundfeatures.py",
        "shared/soundlevel.py",
        "shared/trees.py",
        "shared/trees_csv.py",
        "device/analysis/models.py",
        "device/analysis/stored.py",
        "device/analysis/pipeline.py",
        "device/analysis/soundclass.py",
        "device/analysis/soundmeter.py",
        "device/analysis/trees.py",
        "device/http/admin.py",
        "device/http/api.py",
        "device/http/authz.py",
        "device/http/body.py",
                "device/http/data_api.py",
        "device/http/device_api.py",
        "device/http/json_body.py",
        "device/http/labels.py",
        "device/http/live.py",
        "device/http/model_api.py",
        "device/http/refuse.py",
        "device/http/server.py",
        "device/http/session.py",
        "device/http/static.py",
        "device/integrations/httpc.py",
        "device/integrations/mqtt.py",
        "device/integrations/mqtt_control.py",
        "device/integrations/mqtt_sink.py",
        "device/integrations/outbox.py",
        "device/integrations/tls.py",
        "device/integrations/webhook.py",
        "device/integrations/webhook_settings.py",
        "device/net/portal.py",
        "device/net/setup_http.py",
        "device/net/station.py",
        "device/platform/__init__.py",
        "device/platform/esp32.py",
        "device/sensors/i2s_mic.py",
        "device/sensors/lsm6ds3.py",
        "device/sensors/pcm.py",
        "device/sensors/ring.py",
        "device/sensors/sampler.py",
        "device/store/capture.py",
        "device/store/classes.py",
        "device/store/clips.py",
        "device/store/core.py",
        "device/store/export.py",
        "device/store/figures.py",
        "device/store/meta.py",
        "device/store/plan.py",
        "device/store/reader.py",
        "device/store/recover.py",
        "device/store/retain.py",
        "device/store/rollup.py",
        "device/store/sd.py",
    ),
)

module("main.py", base_path="sensorbox/device")
