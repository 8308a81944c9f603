"""CORS for the API (``http.cors_origin``, off by default): lets a web page from another origin (a dashboard, a
notebook UI) call the device's API with explicit credentials (an ``Authorization`` header).

``""`` = off (no CORS headers at all: browsers keep cross-origin pages out, which the login's JSON-only rule relies
on); ``"*"`` = any origin may read (GET, HEAD); otherwise one exact origin such as ``https://dash.example:8443``,
which may also change state (``authz`` lets it past its cross-site rule when it sends ``Authorization``). Credentials mode is
never granted (no ``Access-Control-Allow-Credentials``), so the browser does not send the session cookie
cross-origin: a page from another origin authenticates with a Basic or token ``Authorization`` header of its own.
The setting is read on every response, so a change applies at once. Preflights (``OPTIONS``) are answered by the
server without authentication, as browsers require. Loaded by ``server`` only for a response to a request with
an ``Origin`` header while the setting is on.
"""


def add(req, res, o):
    """Add the CORS headers for origin setting ``o`` to ``res`` (a Response) when ``req`` comes from it."""
    origin = req.headers.get("Origin")
    if not origin or (o != "*" and origin != o):
        return
    h = res.headers
    h["Access-Control-Allow-Origin"] = o
    if o != "*":
        h["Vary"] = "Origin"
    if req.method == "OPTIONS":
        h["Access-Control-Allow-Methods"] = "GET, HEAD" if o == "*" else "GET, HEAD, POST, PUT, DELETE"
        h["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        h["Access-Control-Max-Age"] = "600"
    else:
        h["Access-Control-Expose-Headers"] = "X-Sensorbox-Next"
