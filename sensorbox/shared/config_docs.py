"""Help texts, human labels, units and groups for the configuration keys, and the schema as plain data, for the
UI, the OpenAPI description and docs/configuration.md: the one place a key's wording lives. Kept apart from
``config_schema`` so the device does not hold these strings in RAM; the bundle build turns ``describe()`` and
``groups()`` into a static JSON file (``www/config-schema.json``) the device serves from flash."""

from sensorbox.shared import config_schema as schema

HELP = {
    "device.name": "Name shown in the UI and sent to integrations",
    "http.port": "TCP port of the web UI and API",
    "http.read_timeout_s": "A client that sends nothing for this long while its request is read is cut off (s)",
    "http.cors_origin": "CORS: origin allowed to call the API from a browser (\"\" = off, * = any); no cookies cross-origin",
    "log.level": "Lowest level kept in the log",
    "log.file_kb": "Size of one log file on flash before it rotates (two files are kept)",
    "accel.enabled": "Sample the accelerometer",
    "accel.rate_hz": "Accelerometer output data rate (Hz)",
    "accel.range_g": "Accelerometer full-scale range (g); 16 bits span plus and minus this",
    "accel.gyro": "Sample the gyroscope too (the LSM6DS3's, ±2000 dps, 16.4 counts per dps; the simulator replays "
                  "the recording's gyroscope columns): the ring, the store's accel resource and the analysis carry 6 "
                  "channels (x y z gx gy gz), which a 6-channel model needs",
    "accel.poll_ms": "Longest time between two reads of the accelerometer FIFO (ms); also read when the analysis, "
                     "the store or a live view wants fresh frames, and at least twice per FIFO span",
    "mic.enabled": "Sample the microphone",
    "mic.rate_hz": "Microphone sample rate (Hz)",
    "mic.poll_ms": "How often the sound meter reads the microphone's FIFO (ms), a chunk at a time; bounded by half "
                   "the FIFO's span (128 ms at 16 kHz in the simulator, 80 ms on an I2S microphone)",
    "sim.replay_gap_every_s": "Simulator: inject a sensor stall this often (s, 0 = never); its frames are lost",
    "sim.replay_gap_ms": "Simulator: length of an injected stall (ms)",
    "sim.replay_noise": "Simulator: peak amplitude of noise added to the replayed recording (counts)",
    "sim.mic_signal": "Simulator: what the microphone hears",
    "sim.mic_tone_hz": "Simulator: tone frequency (Hz, rounded to 20 Hz)",
    "sim.mic_tone_dbfs": "Simulator: tone level (dB full scale, RMS)",
    "sim.mic_noise_dbfs": "Simulator: noise level (dB full scale, RMS)",
    "sim.mic_wav": "Simulator: a folder of 16-bit PCM WAV files (at mic.rate_hz) the microphone replays in a loop "
                   "instead of the signal (\"\" = the signal)",
    "ml.enabled": "Classify the accelerometer continuously (windows, features, model, events)",
    "ml.window": "Frames per analysis window: the running model's (activating a model sets it)",
    "ml.hop": "Frames between the starts of consecutive windows, at most ml.window: activating a model sets the hop "
              "it was trained with",
    "ml.smooth": "Windows whose tree votes are summed before a class is decided (1 = no smoothing)",
    "ml.unknown_permille": "Below this confidence (share of votes, 0-1000) the result is 'unknown'",
    "ml.model_max_kb": "Largest model (RAM, KB) the device accepts; bigger uploads are refused, and so is a model.csv over 4x this many KB",
    "sound.interval_s": "Sound level meter: length of one Leq/Lmin/Lmax/L10/L50/L90 interval (s)",
    "sound.sensitivity_dbfs": "Sound level meter: microphone reading (RMS dBFS) for 94 dB SPL at 1 kHz; calibrates dB SPL",
    "sound.weighting": "Sound level meter: frequency weighting, A (IEC 61672) or Z (none)",
    "sound.time_weighting": "Sound level meter: time weighting of Lmin/Lmax/Ln, fast (125 ms) or slow (1 s)",
    "sound.classify": "Classify sounds continuously with the sound model (POST it with sensorbox model push URL DIR, "
                      "trained with sensorbox train --sensor sound); its module is loaded only while this is on",
    "sound.class_smooth": "Sound classes: windows (128 ms each) whose tree votes are summed before a class is decided",
    "sound.class_unknown_permille": "Sound classes: below this confidence (share of votes, 0-1000) the result is 'unknown'",
    "store.flush_ms": "Store: flush interval (ms); data is durable on flash at most this long after it arrived (the sample ring is still read at least every half of its span)",
    "store.min_free_kb": "Store: free flash to keep (KB); below it the oldest data of any resource is deleted",
    "store.accel_kb": "Store: flash budget for raw accelerometer samples (KB, 0 = not stored)",
    "store.features_kb": "Store: flash budget for feature vectors (KB, 0 = not stored)",
    "store.predictions_kb": "Store: flash budget for predictions (KB, 0 = not stored)",
    "store.soundlevel_kb": "Store: flash budget for sound levels (KB, 0 = not stored)",
    "store.events_kb": "Store: flash budget for events (KB, 0 = not stored)",
    "store.compress": "Store: compress the numeric resources losslessly (delta coding, bit packing): more history in "
                      "the same budgets; segments written either way stay readable",
    "store.soundlevel_1m_kb": "Store: flash budget for per-minute sound levels (Leq, Lmin, Lmax, L10/50/90; KB, "
                              "0 = none)",
    "store.soundlevel_1h_kb": "Store: flash budget for per-hour sound levels (KB, 0 = none)",
    "store.predictions_1m_kb": "Store: flash budget for per-minute class summaries (time per class, changes; KB, "
                               "0 = none)",
    "store.predictions_1h_kb": "Store: flash budget for per-hour class summaries (KB, 0 = none)",
    "board.sdcard": "Board: the microSD card the store keeps its data on: mmc (the SD/MMC slot, 1 data line), mmc4 (4 "
                "lines) or spi:SCK,MOSI,MISO,CS (GPIO numbers); empty = none. Without a card the data stays on "
                "internal flash",
    "capture.classes": "Capture: keep the raw accelerometer data around each change into one of these classes "
                             "(class names as the model gives them, comma separated; empty = none), pinned like "
                             "labelled data until pulled",
    "capture.sound_db": "Capture: keep the raw accelerometer data around each sound level (Leq) at or over this "
                              "many dB (0 = none)",
    "capture.pre_s": "Capture: seconds kept before the event (from the sample ring: at most 6 s at 50 Hz, "
                           "2 s at 100 Hz)",
    "capture.post_s": "Capture: seconds kept after the event (a later event inside extends it)",
    "capture.only": "Capture: store raw accelerometer data only around captures (for when continuous raw data "
                          "costs too much flash); off: continuously, the captures pinned in it",
    "store.soundclass_kb": "Store: flash budget for sound classes (KB, 0 = not stored)",
    "store.clips_kb": "Store: flash budget for audio clips (KB; 3 s at 16 kHz is ~97 KB); clips are pinned until "
                      "pulled, like labelled data",
    "clip.enabled": "Clips: keep short audio clips of the microphone: on request (UI, API, MQTT command clip) and at "
                    "each event capture's triggers (capture.sound_db, capture.classes of the activity model or the "
                    "sound classifier)",
    "clip.length_ms": "Clips: length of a clip (ms, at mic.rate_hz), its pre-trigger part included",
    "clip.pre_ms": "Clips: ms of a clip from before its trigger (from a ring in RAM: at most board.clip_ring_ms; "
                   "0 = the clip starts at its trigger)",
    "board.clip_ring_ms": "Board: the pre-trigger audio the board has RAM for (ms; its profile's: 0 on a generic "
                          "ESP32, 3000 with PSRAM); bounds clip.pre_ms",
    "mqtt.enabled": "MQTT: publish predictions, events, sound levels and health to a broker (store-and-forward)",
    "mqtt.host": "MQTT: broker host name or address",
    "mqtt.port": "MQTT: broker TCP port (1883 plain, 8883 usually TLS)",
    "mqtt.tls": "MQTT: connect with TLS",
    "mqtt.username": "MQTT: user name (empty = anonymous)",
    "mqtt.password": "MQTT: password (write-only)",
    "mqtt.prefix": "MQTT: topic prefix; topics are <prefix>/<device id>/...",
    "mqtt.commands": "MQTT: accept commands on <prefix>/<device id>/cmd/<name> (reload_model, restart, label, label_set, record_start, record_stop): with a token, or without one from a broker that authenticates its clients (then Home Assistant gets the controls)",
    "mqtt.command_token": "MQTT: when set, a command's JSON must carry this as \"token\" (write-only); leave it empty for Home Assistant's controls on a broker with accounts",
    "mqtt.state_every_s": "MQTT: live state topics (what Home Assistant shows): an update on change, at most one per this many seconds (s, 0 = every change)",
    "mqtt.replay_ms": "MQTT: pause between messages while replaying a backlog (ms), so sampling and the UI keep their share",
    "mqtt.tls_ca": "MQTT: CA certificate that signs the broker's (PEM text, line breaks may be spaces; or a file path on the device); set, the broker's certificate and host name are verified (needs mqtt.tls)",
    "webhook.enabled": "Webhook: POST events (and chosen resources) as signed JSON to a URL (store-and-forward)",
    "webhook.url": "Webhook 1: receiver URL, http:// or https:// (https: verified only when webhook.tls_ca is set); webhooks 2 and 3 are webhook.2.* and webhook.3.*",
    "webhook.secret": "Webhook: HMAC-SHA256 key for the X-Sensorbox-Signature header (write-only; empty = unsigned)",
    "webhook.resources": "Webhook: what to send, comma separated: events, predictions, soundlevel",
    "webhook.timeout_s": "Webhook: timeout of each connect, send and reply wait (s); a timeout is retried",
    "webhook.retry_max_s": "Webhook: longest wait between retries (s); waits double from 1 s, with jitter",
    "webhook.events": "Webhook 1: event types to send, comma separated (e.g. class_change); empty = every event",
    "webhook.tls_ca": "Webhook: CA certificate for https receivers (PEM text, line breaks may be spaces; or a file path on the device); set, the server's certificate and host name are verified",
    "webhook.2.url": "Webhook 2: another receiver URL (empty = off); same format as webhook.url",
    "webhook.2.secret": "Webhook 2: HMAC-SHA256 key for its signature (write-only; empty = unsigned)",
    "webhook.2.resources": "Webhook 2: what to send, comma separated: events, predictions, soundlevel",
    "webhook.2.events": "Webhook 2: event types to send, comma separated; empty = every event",
    "webhook.3.url": "Webhook 3: another receiver URL (empty = off); same format as webhook.url",
    "webhook.3.secret": "Webhook 3: HMAC-SHA256 key for its signature (write-only; empty = unsigned)",
    "webhook.3.resources": "Webhook 3: what to send, comma separated: events, predictions, soundlevel",
    "webhook.3.events": "Webhook 3: event types to send, comma separated; empty = every event",
    "accel.i2c_addr": "ESP32: I2C address of the LSM6DS3: 106 (0x6A, SA0 to GND) or 107 (0x6B, SA0 to 3V3)",
    "mic.channel": "ESP32: I2S slot the microphone drives: left (its L/R pin to GND) or right (L/R to 3V3)",
    "board.i2c_sda": "ESP32: GPIO of the accelerometer's I2C SDA (-1 = no accelerometer wired)",
    "board.i2c_scl": "ESP32: GPIO of the accelerometer's I2C SCL (-1 = no accelerometer wired)",
    "board.i2c_freq": "ESP32: I2C clock (Hz); the LSM6DS3 allows up to 400 kHz",
    "board.i2s_sck": "ESP32: GPIO of the microphone's I2S bit clock, SCK (-1 = no microphone wired)",
    "board.i2s_ws": "ESP32: GPIO of the microphone's I2S word select, WS (-1 = no microphone wired)",
    "board.i2s_sd": "ESP32: GPIO of the microphone's I2S data, SD (-1 = no microphone wired)",
    "board.reset_pin": "ESP32: GPIO of a button (to GND) that, held at power-on for 5 s, resets the device to factory settings (-1 = none; 0 is the BOOT button of most boards)",
    "wifi.fallback_s": "ESP32: without a Wi-Fi connection for this long, the set-up access point opens as well (s, 0 = never)",
    "time.ntp_host": "NTP server the clock is set from at each connection and every 6 hours (\"\": pool.ntp.org; \"off\": none)",
}


# What people read instead of the dotted key, one line per key: ``key  label [| unit or - [| advanced]]``. Labels are
# short because the UI shows them under their group's title (GROUPS); units follow the value ("40 ms"). Advanced
# keys (tuning, board wiring, the simulator) are kept out of the way: the UI puts them in its "Advanced" section.
# (Text, not a dict of short strings: this module is compiled into the bundle too, and MicroPython interns every
# short string a module holds, for good, when the device loads its modules at boot.)
LABELS = """
device.name             Device name
http.port               Web port
http.read_timeout_s     Request read timeout | s | advanced
http.cors_origin        Allowed browser origin (CORS) | - | advanced
log.level               Log level
log.file_kb             Log file size | KB | advanced
accel.enabled           Accelerometer on
accel.rate_hz           Sample rate | Hz
accel.range_g           Range | g
accel.gyro              Gyroscope on
accel.poll_ms           FIFO read interval | ms | advanced
mic.enabled             Microphone on
mic.rate_hz             Sample rate | Hz
mic.poll_ms             Buffer read interval | ms | advanced
sim.replay_gap_every_s  Inject a stall every | s | advanced
sim.replay_gap_ms       Stall length | ms | advanced
sim.replay_noise        Added noise | counts | advanced
sim.mic_signal          Microphone signal | - | advanced
sim.mic_tone_hz         Tone frequency | Hz | advanced
sim.mic_tone_dbfs       Tone level | dBFS | advanced
sim.mic_noise_dbfs      Noise level | dBFS | advanced
sim.mic_wav             WAV folder to replay | - | advanced
ml.enabled              Classify activity
ml.window               Window length | frames | advanced
ml.hop                  Window step | frames | advanced
ml.smooth               Smoothing | windows
ml.unknown_permille     "Unknown" below confidence | ‰
ml.model_max_kb         Largest model | KB | advanced
sound.interval_s        Interval | s
sound.sensitivity_dbfs  Microphone sensitivity (at 94 dB SPL) | dBFS
sound.weighting         Frequency weighting
sound.time_weighting    Time weighting
sound.classify          Classify sounds
sound.class_smooth      Smoothing (sound classes) | windows | advanced
sound.class_unknown_permille  Unknown below (sound classes) | ‰ | advanced
store.flush_ms          Flush interval | ms | advanced
store.min_free_kb       Keep free on flash | KB | advanced
store.accel_kb          Raw accelerometer budget | KB
store.features_kb       Features budget | KB
store.predictions_kb    Predictions budget | KB
store.soundlevel_kb     Sound levels budget | KB
store.events_kb         Events budget | KB
store.soundclass_kb     Sound classes budget | KB
mqtt.enabled            Publish over MQTT
mqtt.host               Broker host
mqtt.port               Broker port
mqtt.tls                TLS
mqtt.username           User name
mqtt.password           Password
mqtt.prefix             Topic prefix
mqtt.commands           Accept commands
mqtt.command_token      Command token
mqtt.replay_ms          Pause between backlog messages | ms | advanced
mqtt.state_every_s      Live state at most every | s
mqtt.tls_ca             Broker CA certificate
webhook.enabled         Send webhooks
webhook.url             URL
webhook.secret          Signing secret
webhook.resources       What to send
webhook.timeout_s       Timeout | s | advanced
webhook.retry_max_s     Longest retry wait | s | advanced
webhook.events          Event types
webhook.tls_ca          Server CA certificate
webhook.2.url           URL
webhook.2.secret        Signing secret
webhook.2.resources     What to send
webhook.2.events        Event types
webhook.3.url           URL
webhook.3.secret        Signing secret
webhook.3.resources     What to send
webhook.3.events        Event types
accel.i2c_addr          Accelerometer I2C address | - | advanced
mic.channel             Microphone I2S slot | - | advanced
board.i2c_sda           Accelerometer SDA | GPIO | advanced
board.i2c_scl           Accelerometer SCL | GPIO | advanced
board.i2c_freq          I2C clock | Hz | advanced
board.i2s_sck           Microphone SCK | GPIO | advanced
board.i2s_ws            Microphone WS | GPIO | advanced
board.i2s_sd            Microphone SD | GPIO | advanced
store.compress          Compress stored data | - | advanced
store.soundlevel_1m_kb  Sound levels per minute budget | KB
store.soundlevel_1h_kb  Sound levels per hour budget | KB
store.predictions_1m_kb Classes per minute budget | KB
store.predictions_1h_kb Classes per hour budget | KB
capture.classes         On changes into classes | -
capture.sound_db        At a sound level of | dB
capture.pre_s           Before the event | s
capture.post_s          After the event | s
capture.only            Raw data only around captures | -
store.clips_kb          Audio clips budget | KB
clip.enabled            Keep audio clips | -
clip.length_ms          Clip length | ms
clip.pre_ms             Before the trigger | ms
board.clip_ring_ms      Pre-trigger audio RAM | ms | advanced
board.sdcard                microSD card | - | advanced
board.reset_pin         Factory reset button | GPIO | advanced
wifi.fallback_s         Open the set-up access point after | s
time.ntp_host           NTP server
"""

#: The groups a key's first part names, in the order the UI shows them: ``prefix  title [| kind]`` where kind is
#: "integration" (a connection, shown with its state) or "advanced" (every key of it is advanced).
GROUPS = """
device   Device
accel    Accelerometer
mic      Microphone
ml       Activity analysis
sound    Sound level meter
store    Storage on flash
capture  Event capture
clip     Audio clips
http     Web server
log      Log
wifi     Wi-Fi (ESP32)
time     Clock
mqtt     MQTT | integration
webhook  Webhooks | integration
board    Board wiring (ESP32) | advanced
sim      Simulator (unix port) | advanced
"""


def _table(text):
    # {first word: [the rest split at " | "]}
    out = {}
    for line in text.split("\n"):
        if line.strip():
            k, rest = line.split(None, 1)
            out[k] = [("" if x.strip() == "-" else x.strip()) for x in rest.split(" | ")]
    return out


def groups():
    """GROUPS as a list of dicts: prefix, title, kind ("" for plain settings)."""
    out = []
    for line in GROUPS.split("\n"):
        if line.strip():
            p, rest = line.split(None, 1)
            t = rest.split(" | ")
            out.append({"prefix": p, "title": t[0], "kind": t[1] if len(t) > 1 else ""})
    return out


def describe():
    """The schema as a list of dicts: key, kind, default, bounds or choices, apply (live/reboot), help, and for
    people: label, unit ("" when none) and advanced."""
    out = []
    labels = _table(LABELS)
    for key, kind, default, low, high, apply in schema.entries():
        lab = labels.get(key, [key]) + ["", ""]
        d = {"key": key, "kind": kind, "apply": "reboot" if apply == schema.REBOOT else "live",
             "help": HELP.get(key, ""), "label": lab[0], "unit": lab[1], "advanced": lab[2] == "advanced"}
        if kind == schema.CHOICE:
            d["choices"] = list(high)
        elif kind in (schema.INT, schema.FLOAT):
            d["min"] = low
            d["max"] = high
        elif kind in (schema.STR, schema.SECRET):
            d["min_length"] = low
            d["max_length"] = high
        if kind != schema.SECRET:
            d["default"] = default
        out.append(d)
    return out
