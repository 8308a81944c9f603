"""The webhook sink's rarely used parts, loaded only while they run (``lazy``) so their code and strings cost no
resident heap: reading the settings at start (URLs, resource and event filters, the TLS context) and the status
for ``/api/status``."""

from sensorbox.shared.integration_settings import WEBHOOK_RESOURCES as _RES
from sensorbox.shared.integration_settings import parse_url, redact_url, webhook_resources as resources

_SLOTS = (1, 2, 3)


def prefix(slot):
    """The config key prefix of receiver ``slot``: ``webhook.`` for the first, ``webhook.<n>.`` for the others."""
    return "webhook." if slot == 1 else "webhook.{}.".format(slot)


def types(spec):
    """The event types named in ``spec`` (comma separated) as a tuple, or None (empty: every event)."""
    t = tuple(s.strip() for s in spec.split(",") if s.strip())
    return t or None


def settings(sink):
    """([(slot, url, (tls, host, port, path), resource names, event types, secret, error)], ssl context or None)
    for each receiver with a URL. A receiver whose settings are wrong gets ``error`` (naming the key) and sends
    nothing; the others run. Cursors of receivers and resources not in use are dropped (they would hold back
    retention). Raises ValueError when no URL is set or the CA cannot be used."""
    d = sink.d
    cfg = d.config
    out = []
    https = False
    for slot in _SLOTS:
        p = prefix(slot)
        url = cfg.get(p + "url")
        names = ()
        if url:
            parsed = err = None
            try:
                parsed = parse_url(url)
                names = resources(cfg.get(p + "resources"), p + "resources")
                https = https or parsed[0]
            except ValueError as e:
                err = str(e) if str(e).startswith(p) else "{}url: {}".format(p, e)
                names = ()
            out.append((slot, url, parsed, names, types(cfg.get(p + "events")), cfg.get(p + "secret"), err))
        cur = "webhook." if slot == 1 else "webhook{}.".format(slot)
        for r in _RES:
            if r not in names:
                d.store.drop_cursor(cur + r)  # do not hold back data nobody will read
    # One TLS context for every https receiver (verifying with webhook.tls_ca when set), kept from the first https
    # start on (tls.context: its ~3 KB block may be missing later; shared with the MQTT sink's when the CAs are the
    # same; httpc would make one per POST without it); until a sink keeps one, a start without https keeps its
    # block for it (tls.spare: the first https URL may come late, on a cut-up heap).
    from sensorbox.device import lazy

    if not https:
        if lazy.tls_spare is None:
            try:
                lazy.call("sensorbox.device.integrations.tls", "spare", d)
            except MemoryError:  # (no block for its code now: the next start tries again)
                pass
        if not out:
            raise ValueError("no webhook URL is set (webhook.url, webhook.2.url, webhook.3.url)")
        return out, None
    return out, lazy.call("sensorbox.device.integrations.tls", "context", d, sink, cfg.get("webhook.tls_ca"),
                          "webhook.tls_ca")


def hook_status(h):
    out = {"slot": h.slot, "url": redact_url(h.url), "state": h.state, "resources": list(h.names),
           "events": list(h.types) if h.types else None, "attempts": h.attempts, "failures": h.failures,
           "skipped": h.skipped, "retry_ms": h.retry_ms, "last_ok_ms": h.last_ok_ms, "last_error": h.last_error,
           "last_error_ms": h.last_error_ms}
    if h.outboxes is not None:
        res = {}
        for ob in h.outboxes:
            lt = ob.r.last_t
            res[ob.resource] = {"delivered": ob.sent, "cursor": ob.t, "pending": ob.pending(),
                                "backlog_ms": lt - ob.t if lt is not None and lt > ob.t else 0,
                                "lost_segments": ob.lost()}
        out["outbox"] = res
    return out


def status(sink):
    cfg = sink.d.config
    return {"enabled": cfg.get("webhook.enabled"), "state": sink.state,
            "verified": bool(cfg.get("webhook.tls_ca")), "hooks": [hook_status(h) for h in sink.hooks]}
