"""The device's API contract: ``web/openapi.json`` is its one source, completed here at bundle time.

``web/openapi.json`` declares every route the device answers: paths, methods, ``operationId`` and tags, the scope a
credential needs (``x-scope``: ``read`` or ``admin``; none: open), parameters, request bodies and each operation's
own responses with their schemas and media types. ``document()`` adds what follows from other single sources, so
that no copy of it is kept by hand:

- ``info.version``: the package's version;
- ``components.schemas.ConfigUpdate``: a property per key of ``shared/config_schema.py`` (kind, bounds, choices,
  default; its label and unit from ``shared/config_docs.py``: the help texts are in ``GET /api/config/schema``, not
  repeated here), unknown keys refused;
- on every operation, the answers the server gives to any request (``server.py``, ``refuse.py``): 400 (a
  malformed request), 408, 413, 414, 431 and 503; on one that needs a credential, 401 and 429 (a wrong Basic
  password locks logins out), and 403 where it needs the admin scope; on one with a request body, 415.

``routes(doc)`` is the device's copy of the route list, a line per path (``/api/config GET PUT``), which the bundle
writes into ``http/refuse.py`` as a constant (``bundle.constants``) for ``Allow`` (405, OPTIONS) and ``GET
/api/routes``: no file of its own, no route table in RAM but while that module answers. ``tests/host/test_api_contract.py`` checks both ways that the running device answers exactly these
routes and methods, and runs Schemathesis and a generated client against it.
"""

import copy
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(REPO, "web", "openapi.json")
METHODS = ("get", "put", "post", "delete", "patch")

#: Answers the server may give to any request, whatever the route (see info.description).
ANY = ("400", "408", "413", "414", "431", "503")


def source():
    with open(SOURCE) as f:
        return json.load(f)


def operations(doc):
    """(method in upper case, path, operation) for every operation of ``doc``, in its order."""
    for path, item in doc["paths"].items():
        for m in METHODS:
            if m in item:
                yield m.upper(), path, item[m]


#: What a CA certificate key (``*.tls_ca``) takes, as ``config_schema.check_value`` checks it: "", the path of a
#: PEM or DER file on the device (starting with / or .), or PEM text with its line breaks as spaces.
CA_PATTERN = "^(|[/.][^\\u0000-\\u001f]*| *-----BEGIN CERTIFICATE-----[A-Za-z0-9+/= -]*-----END CERTIFICATE----- *)$"


def _config_schema():
    from sensorbox.shared import config_docs
    from sensorbox.shared import config_schema as cs

    docs = {d["key"]: d for d in config_docs.describe()}
    props = {}
    for key, kind, default, low, high, apply in cs.entries():
        d = docs[key]
        if kind == cs.INT:
            p = {"type": "integer", "minimum": low, "maximum": high}
        elif kind == cs.FLOAT:
            p = {"type": "number", "minimum": low, "maximum": high}
        elif kind == cs.BOOL:
            p = {"type": "boolean"}
        elif kind == cs.CHOICE:
            p = {"type": "string" if isinstance(high[0], str) else "integer", "enum": list(high)}
        else:  # str, secret: bounds on the length in characters
            p = {"type": "string", "minLength": low, "maxLength": high}
            if key.endswith("tls_ca"):  # (integration_settings.ca_problem: PEM text, or a file's path)
                p["pattern"] = CA_PATTERN
        text = d["label"] + (" (" + d["unit"] + ")" if d["unit"] else "") + "."  # (help: /api/config/schema)
        if kind == cs.SECRET:
            text += " Write-only: GET /api/config shows only {\"set\": true|false}."
        if apply == cs.REBOOT:
            text += " Applies after a restart."
        p["description"] = text.strip()
        if kind != cs.SECRET:
            p["default"] = default
        props[key] = p
    return {"type": "object", "properties": props, "additionalProperties": False,
            "description": "Keys to change (any subset; {} changes nothing). Each is checked against its kind and "
                           "bounds; the result as a whole against the other keys and what runs (see the "
                           "operation's 400). Help for each key: GET /api/config/schema."}


def document():
    """The OpenAPI document the device serves (``/api/openapi.json``): the source, completed."""
    import sensorbox

    doc = copy.deepcopy(source())
    doc["info"]["version"] = sensorbox.__version__
    doc["components"]["schemas"]["ConfigUpdate"] = _config_schema()
    for method, path, op in operations(doc):
        res = op["responses"]
        for code in ANY:
            res.setdefault(code, {"$ref": "#/components/responses/E" + code})
        scope = op.get("x-scope")
        if scope:
            res.setdefault("401", {"$ref": "#/components/responses/E401"})
            res.setdefault("429", {"$ref": "#/components/responses/E429"})
            if scope == "admin":
                res.setdefault("403", {"$ref": "#/components/responses/E403"})
        if "requestBody" in op:
            res.setdefault("415", {"$ref": "#/components/responses/E415"})
        op["responses"] = {k: res[k] for k in sorted(res)}
    return doc


def device_document(doc=None):
    """The document the device serves (``www/openapi.json.gz``): ``document()`` without the ``description`` of
    operations, parameters, headers and schemas, which only people read (OpenAPI's required response descriptions,
    the summaries and ``info.description`` stay; nothing a client, a generator or Schemathesis uses goes). With
    them it took six 4 KB blocks of flash gzipped, three without; the full document: ``python -m
    sensorbox.host.apidoc``."""
    doc = copy.deepcopy(document() if doc is None else doc)

    def strip(x, response=False):
        if isinstance(x, dict):
            if not response:
                x.pop("description", None)
            for k, v in x.items():
                if k == "responses" and isinstance(v, dict):
                    for r in v.values():
                        strip(r, True)
                elif k != "description":
                    strip(v)
        elif isinstance(x, list):
            for v in x:
                strip(v)

    strip(doc["paths"])
    for k, v in doc["components"].items():
        if k == "responses":
            for r in v.values():
                strip(r, True)
        else:
            strip(v)
    return doc


def routes(doc):
    """The route list: a line per path of ``doc``, the path then its methods (``/api/labels GET POST``)."""
    out = []
    for path, item in doc["paths"].items():
        out.append(" ".join([path] + [m.upper() for m in METHODS if m in item]))
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # the full document, with every description: python -m sensorbox.host.apidoc > api.json
    import sys

    json.dump(document(), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
