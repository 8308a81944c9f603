"""TLS contexts for the integrations (integrations/tls.py): the CA certificate's DER, what mbedTLS takes, made from
the configured value (a file the device keeps, PEM or DER, or PEM text in the config) without a block the size of
its text."""

import binascii

from devtest import cut_heap, inner, largest_free, tmpdir


def _cert(n):
    # n bytes that start as a certificate's DER does (a SEQUENCE of n - 4 bytes): what _der checks of it
    return bytes((0x30, 0x82, (n - 4) >> 8, (n - 4) & 255)) + bytes((i * 7 + 3) & 255 for i in range(n - 4))


def _pem(der, sep):
    b = binascii.b2a_base64(der).strip()
    return (b"-----BEGIN CERTIFICATE-----" + sep + sep.join(b[i:i + 64] for i in range(0, len(b), 64)) + sep +
            b"-----END CERTIFICATE-----")


def test_a_ca_of_4000_characters_is_decoded_on_a_heap_without_a_4_kb_block():
    """A CA of 4000 characters (the schema's bound) was read whole, then cut and joined: three blocks of ~4 KB,
    which a heap cut up by services and requests lacks when a sink restarts (docs/heap.md). Now it is read and
    decoded 256 bytes at a time; the one large block is the DER itself (mbedTLS takes it as one bytes object):
    on a heap with no free piece of 3.4 KB the 2,880-byte DER comes out of the file config_file keeps (line
    breaks as spaces), a PEM file with line breaks, a DER file and PEM text in the config alike."""
    import gc

    from sensorbox.device.integrations import tls

    der_of = inner(tls, "_der")
    d = tmpdir()
    der = _cert(2880)
    values = []
    for name, data in (("ca.pem", _pem(der, b" ")), ("lines.pem", _pem(der, b"\n")), ("ca.der", der)):
        with open(d + "/" + name, "wb") as f:
            f.write(data)
        values.append(d + "/" + name)
    text = _pem(der, b" ").decode()
    values.append(text)
    assert len(text) == 3953  # (within the schema's 4000 characters)
    assert [der_of(v, "mqtt.tls_ca") == der for v in values] == [True] * 4  # (and what a first call makes once)
    for v in values:
        gc.collect()
        held = cut_heap(3300)
        try:
            assert largest_free() < 3400
            got = der_of(v, "mqtt.tls_ca")  # (before: MemoryError, allocating ~4 KB)
        finally:
            held.clear()
        assert got == der, v[-16:]


def test_what_is_not_a_certificate_is_refused_naming_the_key():
    """Text that is not base64, PEM without its end line (or cut short: the base64's last group), a PEM file
    without a certificate: refused, naming the key, wherever the 256-byte pieces begin and end."""
    from sensorbox.device.integrations import tls

    der_of = inner(tls, "_der")
    d = tmpdir()
    der = _cert(700)
    pem = _pem(der, b" ").decode()
    for pad in range(0, 260, 13):  # (the armour lines and the base64 across the pieces' ends)
        assert der_of(" " * pad + pem, "k") == der and der_of("x" * pad + " " + pem, "k") == der, pad
        with open(d + "/ca.pem", "w") as f:
            f.write(pem + " " * pad)
        assert der_of(d + "/ca.pem", "k") == der, pad
    b64 = binascii.b2a_base64(der).decode()
    assert der_of(b64, "k") == der  # (bare base64)
    with open(d + "/crl.pem", "w") as f:
        f.write("-----BEGIN X509 CRL----- " + b64 + " -----END X509 CRL-----")
    for value, words in ((pem[:-30], "PEM without -----END CERTIFICATE-----"),
                         (pem[:-25], "PEM without -----END CERTIFICATE-----"),
                         (pem[:-28] + "-----END CERTIFICATE-----", "not a certificate"),
                         ("-----BEGIN CERTIFICATE----- bm90 -----END CERTIFICATE-----", "not a certificate"),
                         ("bm90IGEgY2VydA", "not a certificate"), (d + "/crl.pem", "not a certificate"),
                         (d + "/none.pem", "cannot read")):
        try:
            der_of(value, "webhook.tls_ca")
            raise AssertionError(value[:40])
        except ValueError as e:
            assert str(e).startswith("webhook.tls_ca: " + words), (value[-40:], e)


# Two test CAs (self-signed EC P-256 certificates, public parts only: ``openssl req -x509 -newkey ec``), the
# config's form of a PEM given as text (line breaks as spaces).
_CA_A = ("-----BEGIN CERTIFICATE----- "
         "MIIBkjCCATmgAwIBAgIUPgjTrZw/KLfQHm3PYf95gqJ4a1kwCgYIKoZIzj0EAwIw"
         "HjEcMBoGA1UEAwwTc2Vuc29yYm94IHRlc3QgQ0EgYTAgFw0yNjEyMDYyMDIwMzFa"
         "GA8yMTI2MTExMjIwMjAzMVowHjEcMBoGA1UEAwwTc2Vuc29yYm94IHRlc3QgQ0Eg"
         "YTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEPlipqpjSVSzrpilQeq2XWKt82w"
         "9TU54YzcRdxGQR54+D6+rfS5GO45fpxXKMbLSe41+ymy8Vq+g7iu32x1eIOjUzBR"
         "MB0GA1UdDgQWBBTTk+sd946SnhJt3SMZiHPytjUrvjAfBgNVHSMEGDAWgBTTk+sd"
         "946SnhJt3SMZiHPytjUrvjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cA"
         "MEQCIENkqwsjz3E6KBxw9gEdMNYdYyyPXjgyptNkhY6R5GKfAiAmxqPkUBihApZs"
         "mo6DgLgwuh4sxXLjS1w8Y5X0NpbfBg=="
         " -----END CERTIFICATE-----")
_CA_B = ("-----BEGIN CERTIFICATE----- "
         "MIIBkjCCATmgAwIBAgIUf71qQdvhqZV6OLqtqk/qCaVnB4IwCgYIKoZIzj0EAwIw"
         "HjEcMBoGA1UEAwwTc2Vuc29yYm94IHRlc3QgQ0EgYjAgFw0yNjEyMDYyMDIwMzJa"
         "GA8yMTI2MTExMjIwMjAzMlowHjEcMBoGA1UEAwwTc2Vuc29yYm94IHRlc3QgQ0Eg"
         "YjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABIm71pL/h6OrRCkR49s9nB4is4iD"
         "UwviVIyDyDoRWFcMZsUl+//ipB9nX+UIZoQecaRs63P3DUi5+4Cxxn4NmSGjUzBR"
         "MB0GA1UdDgQWBBRZ3KzWsdk1OPHn/rphq35gJ1ze7jAfBgNVHSMEGDAWgBRZ3KzW"
         "sdk1OPHn/rphq35gJ1ze7jAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cA"
         "MEQCIFQlfITcVMBMPBIc6p4n/0200nAvV34Riv/A2G22tYtOAiBaE6hJ3N6vXKUE"
         "nruUMgz52VLMLONPMUhOytgzeKFWmw=="
         " -----END CERTIFICATE-----")


def test_a_changed_ca_gets_its_context_in_the_old_ones_block_on_a_cut_up_heap():
    """A CA change makes the sink's TLS context again (~3 KB in one block, 3,048 bytes here). On a heap whose
    free pieces are all under 2 KB the old context's block is the one place for it, but the new CA's DER and the
    pieces it is decoded from were made after the old context was let go and took part of that block: the new
    context found no 3,048 bytes (test_mqtt_tls at 152wK; MemoryError here before). Now the DER is made first,
    then the old context let go and the new one asked for. A CA that is no certificate is refused naming the key,
    and the old context stays kept, block and all."""
    import gc
    import ssl

    from sensorbox.device.integrations import tls

    class Sink:
        tls = None

    class Dev:
        webhook = None

    d = Dev()
    s = d.mqtt = Sink()

    def first():  # (a frame of its own: a stale copy of the context in this one's slots would keep its block)
        a = tls.context(d, s, _CA_A, "mqtt.tls_ca")
        assert s.tls[0] == _CA_A and s.tls[1] is a and a.verify_mode == ssl.CERT_REQUIRED

    first()
    gc.collect()
    held = cut_heap(2000)
    try:
        assert largest_free() < 2100
        try:
            tls.context(d, s, "-----BEGIN CERTIFICATE----- bm90 -----END CERTIFICATE-----", "mqtt.tls_ca")
            raise AssertionError("took a CA that is no certificate")
        except ValueError as e:
            assert str(e) == "mqtt.tls_ca: not a certificate (PEM, base64 DER or a file path)", e
        assert s.tls[0] == _CA_A
        b = tls.context(d, s, _CA_B, "mqtt.tls_ca")  # (before: MemoryError, allocating 3048 bytes)
        assert s.tls[0] == _CA_B and s.tls[1] is b and b.verify_mode == ssl.CERT_REQUIRED
        assert tls.context(d, s, _CA_B, "mqtt.tls_ca") is b  # (kept: not made again)
    finally:
        held.clear()


class _Store:  # (what webhook_settings.settings asks of the store: cursors of receivers not in use dropped)
    def drop_cursor(self, name):
        pass


def test_the_first_https_start_late_on_a_cut_up_heap_gets_the_block_a_start_without_tls_kept():
    """The first TLS context comes late when TLS is turned on late: the config fuzz at 152wK set ``webhook.2.url``
    to an https URL after ~250 config changes, and the webhook's start found no 3,048-byte block for its context on
    the heap they had cut up (MemoryError here before: the block was asked for then). Now a sink's start without
    TLS keeps a context that verifies nothing (``tls.spare``, ``lazy.tls_spare``) while no sink keeps one: the
    first https start without a CA takes it as it is, one with a CA has its context made in its block (the CA's DER
    first). One spare for both sinks; none while a sink keeps a context; a CA mbedTLS refuses gives the block
    back to a spare."""
    import gc
    import ssl

    from devtest import StubConfig
    from sensorbox.device import lazy  # (resident on a device: its reserve taken at boot)
    from sensorbox.device.integrations import tls, webhook_settings

    class Sink:
        tls = None

    class Dev:
        mqtt = None

    def start(d, s, **cfg):  # the webhook sink's start: its settings, with the TLS context of an https receiver
        d.config = None
        d.config = StubConfig(**cfg)
        return webhook_settings.settings(s)[1]

    def boot(d, s):  # (a frame of its own: a stale copy of the spare in the test's slots would keep its block)
        assert start(d, s, webhook__url="http://h/", webhook__2__url="") is None  # (the heap whole)
        spare = lazy.tls_spare
        assert s.tls is None and spare.verify_mode == ssl.CERT_NONE
        m = d.mqtt = Sink()
        tls.spare(d)  # (the MQTT sink's start without TLS: the one spare is kept)
        assert lazy.tls_spare is spare and m.tls is None
        d.mqtt = None

    for ca in ("", _CA_A):
        assert lazy.tls_spare is None
        d = Dev()
        d.store = _Store()
        s = d.webhook = Sink()
        s.d = d
        boot(d, s)
        gc.collect()
        held = cut_heap(2000)
        try:
            assert largest_free() < 2100
            ctx = start(d, s, webhook__url="http://h/", webhook__2__url="https://h:8443/x",
                        webhook__tls_ca=ca)  # (before: MemoryError, allocating 3048 bytes)
            assert s.tls == (ca, ctx) and lazy.tls_spare is None
            assert ctx.verify_mode == (ssl.CERT_REQUIRED if ca else ssl.CERT_NONE)
            assert start(d, s, webhook__url="http://h/") is None and s.tls[1] is ctx  # (kept, and no spare:)
            assert lazy.tls_spare is None
        finally:
            held.clear()
        s.tls = ctx = None
        gc.collect()
    # given up for a request or an import short of memory once lazy's reserve is used (and made at a later start)
    d = Dev()
    d.webhook = Sink()
    tls.spare(d)
    assert lazy.tls_spare is not None and lazy.release() and lazy.tls_spare is not None  # (the reserve first)
    used = lazy.used_reserve
    assert lazy.release() and lazy.tls_spare is None and lazy.used_reserve == used + 1
    assert not lazy.release()
    assert lazy.rearm()
    d = Dev()  # a CA that mbedTLS refuses (a DER it cannot parse): the spare comes back, in its block
    s = d.webhook = Sink()
    tls.spare(d)
    assert lazy.tls_spare is not None
    gc.collect()
    held = cut_heap(2000)
    try:
        try:
            tls.context(d, s, binascii.b2a_base64(_cert(700)).decode(), "webhook.tls_ca")
            raise AssertionError("mbedTLS took a DER that is no certificate")
        except ValueError as e:
            assert str(e).startswith("webhook.tls_ca: the certificate was refused"), e
        assert s.tls is None and lazy.tls_spare is not None
        assert tls.context(d, s, "", "webhook.tls_ca").verify_mode == ssl.CERT_NONE and lazy.tls_spare is None
    finally:
        held.clear()
