"""The webhook sink's rarely used parts, loaded only while they run (``lazy``) so their code and strings cost no
resident heap: reading the settings at start (URL, resource filter) and the status for ``/api/status``."""

_RES = ("predictions", "soundlevel", "events")


def parse_url(url):
    """(tls, host, port, path) of an ``http://`` or ``https://`` URL; raises ValueError naming what is wrong."""
    if url.startswith("https://"):
        tls, rest = True, url[8:]
    elif url.startswith("http://"):
        tls, rest = False, url[7:]
    else:
        raise ValueError("URL must start with http:// or https:// ({})".format(url))
    i = rest.find("/")
    hp, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    if "@" in hp or "[" in hp or " " in url:
        raise ValueError("URL not supported: {} (no user info, IPv6 literals or spaces)".format(url))
    j = hp.rfind(":")
    port = 443 if tls else 80
    if j >= 0:
        try:
            port = int(hp[j + 1:])
        except ValueError:
            raise ValueError("URL port is not a number: {}".format(url))
        hp = hp[:j]
    if not hp or not 0 < port < 65536:
        raise ValueError("URL has no host or a bad port: {}".format(url))
    return tls, hp, port, path


def resources(spec):
    """The resources named in ``webhook.resources`` (comma separated), in ``_RES`` order."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        if n not in _RES:
            raise ValueError("webhook.resources: unknown resource {!r} (use {})".format(n, ", ".join(_RES)))
    if not names:
        raise ValueError("webhook.resources is empty")
    return [r for r in _RES if r in names]


def settings(sink):
    """(url as (tls, host, port, path), resource names) from the config; raises ValueError naming the problem."""
    cfg = sink.d.config
    return parse_url(cfg.get("webhook.url")), resources(cfg.get("webhook.resources"))


def status(sink):
    out = {"enabled": sink.d.config.get("webhook.enabled"), "state": sink.state, "url": sink.url,
           "attempts": sink.attempts, "failures": sink.failures, "retry_ms": sink.retry_ms,
           "last_ok_ms": sink.last_ok_ms, "last_error": sink.last_error, "last_error_ms": sink.last_error_ms}
    if sink.outboxes is not None:
        res = {}
        for ob in sink.outboxes:
            lt = ob.r.last_t
            res[ob.resource] = {"delivered": ob.sent, "cursor": ob.t, "pending": ob.pending(),
                                "backlog_ms": lt - ob.t if lt is not None and lt > ob.t else 0,
                                "lost_segments": ob.lost()}
        out["outbox"] = res
    return out
