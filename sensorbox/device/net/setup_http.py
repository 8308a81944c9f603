"""The set-up page's routes and the captive portal's answers to connectivity probes (loaded per request by
``http/server``, then unloaded).

    GET  /setup                 the set-up page (www/setup.html)
    GET  /api/wifi              Wi-Fi state, known networks (names only), hostname, whether this is the first set-up
    GET  /api/wifi/scan         networks in range: [{"ssid", "rssi", "security", "channel"}], strongest first
    POST /api/wifi/test         {"ssid", "password"}: connect now -> {"ok", "ip"} or {"ok": false, "error"}
    POST /api/wifi              {"ssid", "password", "admin_password", "name"?, "test"?: true}: tested, then saved
    GET  /generate_204, /hotspot-detect.html, /connecttest.txt, ...   302 to the set-up page while the set-up
                                access point is open (what makes a phone show its "sign in to network" page)

Before the first set-up (no ``wifi.json``) the device is reachable only on its own WPA2 access point, whose
password is on the serial console: these routes are open then, and the set-up sets the admin password. Once
configured, they need a credential like every other route (the fallback access point is for the owner). Wi-Fi
passwords are stored in ``wifi.json`` and never returned: the known networks are listed by name, "password": "set".
"""

import json
import os

from micropython import const

from sensorbox.device.http.server import (BadRequest, Response, error, guard, json_response, not_allowed,
                                          read_json)

# the connectivity probes of Android, Apple, Windows and Firefox (what makes a phone show "sign in to network")
_PROBES = const(" /generate_204 /gen_204 /hotspot-detect.html /library/test/success.html /connecttest.txt "
                "/ncsi.txt /redirect /canonical.html /success.txt ")

_SECURITY = ("open", "WEP", "WPA", "WPA2", "WPA/WPA2", "WPA2-Enterprise", "WPA3", "WPA2/WPA3")


async def handle(device, app, req):
    p = req.path
    st = device.platform.station  # (http/server.py answers for a device without a station)
    if not p.startswith("/api/") and p != "/setup":  # a connectivity probe (or a path nothing else answers)
        if st.portal is not None and (" " + p + " ") in _PROBES:
            return Response(b"", 302, {"Location": "http://{}/setup".format(st.portal.ip),
                                       "Cache-Control": "no-store"})
        return not_allowed(req)  # (404)
    if p == "/setup":
        if req.method != "GET":
            return not_allowed(req)
        from sensorbox.device.http.static import static_file

        return static_file(device.platform.www_dir, "setup.html", req)
    from sensorbox.device.net import station as st_mod  # (resident already where there is a station)
    action = p[9:]  # after /api/wifi
    if req.method not in {"": ("GET", "POST"), "/scan": ("GET",), "/test": ("POST",)}.get(action, ()):
        return not_allowed(req)  # (405 with Allow, or 404)
    data = device.platform.data_dir
    first = not st_mod.load_networks(data, device.log) and st.state == "setup"
    if not first:
        refused = await guard(req, admin=req.method != "GET")
        if refused is not None:
            return refused
    elif req.method == "POST" and (req.content_type or "").split(";")[0].strip() != "application/json":
        raise BadRequest("set-up needs a JSON body (Content-Type: application/json)", "Content-Type", 415)
    if action == "":
        if req.method == "GET":
            out = st.status()
            out["first"] = first
            out["networks"] = [{"ssid": s, "password": "set" if pw else "none"}
                               for s, pw in st_mod.load_networks(data, device.log)]
            out["name"] = device.config.get("device.name")
            return out
        return await _save(device, st, req, first)
    if action == "/scan":
        return json_response(_scan(st))
    body = read_json(req)
    ssid, pw = _creds(body)
    return await _test(st, ssid, pw)


def _scan(st):
    best = {}
    try:
        found = st.sta.scan()  # (the radio scans for ~1-2 s: the loop waits, the sensor FIFOs hold the samples)
    except OSError as e:
        raise BadRequest("scan failed: {}".format(e))
    for ssid, _bssid, ch, rssi, sec, hidden in found:
        s = ssid.decode("utf-8", "replace") if isinstance(ssid, bytes) else ssid
        if not s or hidden:
            continue
        if s not in best or rssi > best[s]["rssi"]:
            best[s] = {"ssid": s, "rssi": rssi, "channel": ch,
                       "security": _SECURITY[sec] if 0 <= sec < len(_SECURITY) else str(sec)}
    out = list(best.values())
    out.sort(key=lambda n: -n["rssi"])
    return out


def _creds(body):
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    ssid = body.get("ssid")
    pw = body.get("password", "")
    if not isinstance(ssid, str) or not 0 < len(ssid.encode()) <= 32:
        raise BadRequest("ssid: the network's name, 1 to 32 bytes", "ssid")
    if not isinstance(pw, str) or not (pw == "" or 8 <= len(pw) <= 63):
        raise BadRequest("password: 8 to 63 characters (WPA2), or empty for an open network", "password")
    return ssid, pw


async def _test(st, ssid, pw):
    """Connect the station to ``ssid`` now (the radio taken from the station service meanwhile)."""
    from sensorbox.device.net import station as st_mod
    st.hold = True
    try:
        async with st.lock:
            code = await st_mod.attempt(st.sta, st.net, ssid, pw, st.connect_ms)
            ip = st.sta.ifconfig()[0] if code == st.net.STAT_GOT_IP else None
    finally:
        st.hold = False
    if ip is not None:
        return {"ok": True, "ssid": ssid, "ip": ip}
    why = st_mod.REASONS.get(code, "no connection within {} s".format(st.connect_ms // 1000))
    return {"ok": False, "ssid": ssid, "error": why, "field": "password" if code == 202 else "ssid"}


async def _save(device, st, req, first):
    from sensorbox.device.net import station as st_mod

    body = read_json(req)
    ssid, pw = _creds(body)
    admin = body.get("admin_password")
    name = body.get("name")
    if first and (not isinstance(admin, str) or not 8 <= len(admin) <= 64):
        raise BadRequest("admin_password: the device's admin password, 8 to 64 characters", "admin_password")
    if name is not None and name != "" and not (isinstance(name, str) and len(name) <= 32):
        raise BadRequest("name: at most 32 characters", "name")
    if body.get("test", True):
        res = await _test(st, ssid, pw)
        if not res["ok"]:
            return json_response({"error": "could not connect to {}: {}".format(ssid, res["error"]),
                                  "field": res["field"]}, 400)
    try:
        _save_network(st_mod, device.platform.data_dir, ssid, pw, device.log)
        if first:
            device.auth.set_password(admin)
        if name:
            device.config.update({"device.name": name})
    except OSError as e:
        return error(507, "cannot save on flash ({})".format(e))
    except ValueError as e:  # a name the config refuses
        return error(400, getattr(e, "reason", str(e)), "name")
    h = st_mod.hostname(device.config.get("device.name"), device.device_id)
    device.log.info("net", "set-up saved Wi-Fi {}{}".format(ssid, " and the admin password" if first else ""))
    ip = st.sta.ifconfig()[0] if st.sta.isconnected() else None
    return {"ok": True, "ssid": ssid, "ip": ip, "hostname": h, "url": "http://{}.local/".format(h),
            "address": "http://{}/".format(ip) if ip else None}


def _save_network(st_mod, data_dir, ssid, password, log):
    """Put (ssid, password) first among the known networks (written atomically)."""
    nets = [{"ssid": ssid, "password": password}]
    for s, p in st_mod.load_networks(data_dir, log):
        if s != ssid and len(nets) < st_mod.MAX_NETWORKS:
            nets.append({"ssid": s, "password": p})
    path = data_dir + "/wifi.json"
    with open(path + ".tmp", "w") as f:
        json.dump(nets, f)
    os.rename(path + ".tmp", path)
