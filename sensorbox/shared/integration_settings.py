"""Integration settings read the same way by the config schema (when they are set) and by the sinks (when they
start): webhook URLs, how a URL may be shown, the resources a webhook sends. Small on purpose: a sink loads it
without the schema."""

WEBHOOK_RESOURCES = ("predictions", "soundlevel", "events", "soundclass")


def redact_url(url):
    """``scheme://host[:port]/...``: a URL as it may be shown or logged (its path and query can hold a token)."""
    i = url.find("://")
    j = url.find("/", i + 3) if i >= 0 else -1
    head = url if j < 0 else url[:j]
    if "@" in head:
        head = head[:i + 3] + "***@" + head[head.rfind("@") + 1:]
    if j < 0:
        return head
    return head + ("/" if j == len(url) - 1 else "/...")


def parse_url(url):
    """(tls, host, port, path) of an ``http://`` or ``https://`` URL; raises ValueError naming what is wrong
    (without echoing the path, which can hold a token)."""
    if url.startswith("https://"):
        tls, rest = True, url[8:]
    elif url.startswith("http://"):
        tls, rest = False, url[7:]
    else:
        raise ValueError("must start with http:// or https://")
    i = rest.find("/")
    hp, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    if "@" in hp or "[" in hp or " " in url:
        raise ValueError("not supported: user info, IPv6 literals or spaces ({})".format(redact_url(url)))
    j = hp.rfind(":")
    port = 443 if tls else 80
    if j >= 0:
        try:
            port = int(hp[j + 1:])
        except ValueError:
            raise ValueError("port is not a number ({})".format(redact_url(url)))
        hp = hp[:j]
    if not hp or not 0 < port < 65536:
        raise ValueError("no host or a bad port ({})".format(redact_url(url)))
    return tls, hp, port, path


def webhook_resources(spec, key="webhook.resources"):
    """The resources named in ``spec`` (comma separated), in ``WEBHOOK_RESOURCES`` order."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        if n not in WEBHOOK_RESOURCES:
            raise ValueError("{}: unknown resource {!r} (use {})".format(key, n, ", ".join(WEBHOOK_RESOURCES)))
    if not names:
        raise ValueError(key + " is empty")
    return [r for r in WEBHOOK_RESOURCES if r in names]


# A CA certificate value (``mqtt.tls_ca``, ``webhook.tls_ca``) that is not a file path: PEM text, its line breaks as
# spaces. The device streams it from a request into a file of its own as it arrives (``http/body.py`` checks the
# characters as ``_ca_byte`` does, and keeps the ends, which ``config_file`` checks with ``ca_problem``), keeping the
# file's path as the value. (Here, not in config_schema: the schema's module stays within its globals and blocks.)
_ARMOUR = ("-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----")


def _ca_byte(c):
    # whether the byte c may be in PEM text: base64, "-", space (http/body.py spells it alike)
    return 48 <= c <= 57 or 65 <= (c & 0xDF) <= 90 or c == 43 or c == 47 or c == 61 or c == 32 or c == 45


def ca_problem(value, b):
    """What is wrong with PEM text ``value`` (``b``: its UTF-8) as a CA certificate, or None: the armour at both
    ends, only base64 characters, spaces and dashes."""
    s = value.strip(" ")
    if not (s.startswith(_ARMOUR[0]) and s.endswith(_ARMOUR[1])) or len(s) < 52:
        return ("expected PEM text ({} ... {}, line breaks as spaces) or the path of a PEM or DER file on the "
                "device".format(*_ARMOUR))
    for i in range(len(b)):
        if not _ca_byte(b[i]):
            return "a character PEM text cannot hold at {}".format(i)
    return None
