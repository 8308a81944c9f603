"""Schemathesis hooks for tests/host/test_api_contract.py (loaded with SCHEMATHESIS_HOOKS=st_hooks).

- ``utf8_body``: a check of our own, on every textual response (JSON, text): the body is valid UTF-8 (issue 19 saw
  CESU-8 in an error body).
- Network targets stay on this machine: before any request is sent, a configuration body's ``mqtt.host`` and
  webhook URLs are made loopback values and ``mqtt.enabled`` / ``webhook.enabled`` false (Schemathesis validates
  the case again after this hook: what it sends is what it judges). This is the sandbox's network rule, not the
  device's contract: a fuzzed configuration must never make the device connect elsewhere.
- A wrong credential while the client's logins are locked out gets the documented 429 (wait and retry), which
  Schemathesis' ``ignored_auth`` probe (invalid credentials, expecting 401/403) would count as a failure.
"""

import schemathesis

SAFE = {"mqtt.host": "127.0.0.1", "webhook.url": "http://127.0.0.1:9/hook", "webhook.2.url": "http://127.0.0.1:9/2",
        "webhook.3.url": "http://127.0.0.1:9/3"}
OFF = ("mqtt.enabled", "webhook.enabled")


@schemathesis.check
def utf8_body(ctx, response, case):
    ct = (response.headers.get("content-type") or [""])
    ct = ct[0] if isinstance(ct, list) else ct
    if ct.startswith(("application/json", "text/")):
        try:
            response.content.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AssertionError("response body is not valid UTF-8: {} ({!r})".format(e, response.content[:200]))
    return None


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if isinstance(body, dict):
        for k, v in SAFE.items():
            if isinstance(body.get(k), str) and body[k] not in ("", v):
                body[k] = v
        for k in OFF:
            if body.get(k) is True:
                body[k] = False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    # every failure counts but ignored_auth's probe meeting the login lockout's documented 429
    return not (type(failure).__name__ == "IgnoredAuth" and "got `429" in str(getattr(failure, "message", "")))
