"""Home Assistant's websocket API for the tests, run with the Home Assistant venv's Python (its aiohttp).

    python ha_ws.py URL TOKEN call '[{"type": "config/device_registry/list"}, ...]'   results as a JSON list
    python ha_ws.py URL TOKEN watch      a JSON line per state change ({"entity_id", "state", "attributes",
                                         "last_updated"}), after a first line {"subscribed": true}, until killed
"""

import asyncio
import json
import sys

import aiohttp


async def main(url, token, mode, arg=None):
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url + "/api/websocket") as ws:
            assert (await ws.receive_json())["type"] == "auth_required"
            await ws.send_json({"type": "auth", "access_token": token})
            msg = await ws.receive_json()
            if msg["type"] != "auth_ok":
                raise SystemExit("auth failed: {}".format(msg))
            if mode == "call":
                out = []
                for i, m in enumerate(json.loads(arg), 1):
                    await ws.send_json(dict(m, id=i))
                    while True:
                        r = await ws.receive_json()
                        if r.get("id") == i and r["type"] == "result":
                            break
                    out.append(r)
                print(json.dumps(out))
                return
            await ws.send_json({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})
            r = await ws.receive_json()
            assert r.get("success"), r
            sys.stdout.write(json.dumps({"subscribed": True}) + "\n")
            sys.stdout.flush()
            while True:
                m = await ws.receive_json()
                if m.get("type") != "event":
                    continue
                d = m["event"]["data"]
                n = d.get("new_state") or {}
                sys.stdout.write(json.dumps({"entity_id": d["entity_id"], "state": n.get("state"),
                                             "attributes": n.get("attributes"),
                                             "last_updated": n.get("last_updated")}) + "\n")
                sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
