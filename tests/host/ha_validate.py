"""Validate a device-based MQTT discovery payload with Home Assistant's own code, as Home Assistant would on receipt.

Runs in the Home Assistant venv (``ha_core.VENV``): ``python ha_validate.py < input.json`` with ``{"payload": the
discovery JSON text, "samples": {topic: [message text, ...]}}`` prints a JSON report ``{"errors": [...],
"components": {key: {"platform", "config", "dropped", "rendered"}}}`` (a component with only its platform, which
Home Assistant removes, is reported with ``"removed": True``); ``rendered`` gives, for each sample message on the
component's state topic, what its value template makes of it (as Home Assistant's MQTT entities render it, or the
exception's text; an update entity without a template: the JSON its state schema makes of the message). The steps are those of
``homeassistant.components.mqtt.discovery`` (abbreviations expanded, the device schema, each component's platform
with the device's shared options merged in, then the platform's discovery schema). Home Assistant's discovery
schemas drop keys they do not know without a word (``vol.REMOVE_EXTRA``): ``dropped`` lists them, so a misspelt
or unsupported option is caught here rather than silently ignored.
"""

import json
import sys


async def main():
    import importlib
    import tempfile

    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.template import Template

    import voluptuous as vol
    from homeassistant.components.mqtt import discovery as disc
    from homeassistant.components.mqtt.schemas import DEVICE_DISCOVERY_SCHEMA, MQTT_ORIGIN_INFO_SCHEMA, SHARED_OPTIONS

    hass = HomeAssistant(tempfile.mkdtemp())  # (templates are made for an instance: cv.template looks it up)
    inp = json.loads(sys.stdin.read())
    samples = inp.get("samples") or {}
    report = {"errors": [], "components": {}}
    try:
        payload = json.loads(inp["payload"].encode("utf-8", "surrogatepass").decode("utf-8"))  # strict UTF-8
    except (UnicodeDecodeError, ValueError) as e:
        report["errors"].append("not UTF-8 JSON: {}".format(e))
        print(json.dumps(report))
        return
    disc._replace_all_abbreviations(payload)
    try:
        DEVICE_DISCOVERY_SCHEMA(payload)
    except vol.Invalid as e:
        report["errors"].append("device discovery schema: {}".format(e))
        print(json.dumps(report))
        return
    try:
        MQTT_ORIGIN_INFO_SCHEMA(payload["origin"])
    except (vol.Invalid, KeyError) as e:
        report["errors"].append("origin: {}".format(e))
    for key, comp in payload["components"].items():
        comp = dict(comp)
        own = set(comp)
        platform = comp.pop("platform")
        if not comp:  # only the platform: Home Assistant removes the component (no schema)
            report["components"][key] = {"platform": platform, "removed": True, "dropped": [], "rendered": [],
                                         "config": {}}
            continue
        comp["device"] = payload["device"]
        comp["origin"] = payload.get("origin")
        for opt in SHARED_OPTIONS:
            if opt in payload and opt not in comp:
                comp[opt] = payload[opt]
        if platform == "device_automation":
            schema = importlib.import_module("homeassistant.components.mqtt.device_trigger").TRIGGER_DISCOVERY_SCHEMA
        else:
            schema = importlib.import_module("homeassistant.components.mqtt." + platform).DISCOVERY_SCHEMA
        try:
            out = schema(comp)
        except vol.Invalid as e:
            report["errors"].append("{} ({}): {}".format(key, platform, e))
            continue
        dropped = sorted(k for k in own if k not in out and k != "platform")
        rendered = []
        topic = comp.get("state_topic") or comp.get("topic")
        tpl = comp.get("value_template")
        for msg in samples.get(topic, ()) if tpl else ():
            try:
                rendered.append(Template(tpl, hass).async_render_with_possible_json_value(msg, "<default>"))
            except Exception as e:  # noqa: BLE001 - reported to the test
                rendered.append("<error {}: {}>".format(type(e).__name__, e))
        if platform == "update" and not tpl:  # its state is JSON that Home Assistant checks against its schema
            from homeassistant.components.mqtt.update import MQTT_JSON_UPDATE_SCHEMA

            for msg in samples.get(topic, ()):
                try:
                    rendered.append(json.dumps(MQTT_JSON_UPDATE_SCHEMA(json.loads(msg))))
                except (vol.Invalid, ValueError) as e:
                    rendered.append("<error {}: {}>".format(type(e).__name__, e))
        report["components"][key] = {"platform": platform, "dropped": dropped, "rendered": rendered,
                                     "config": json.loads(json.dumps(out, default=str))}
    print(json.dumps(report))


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
