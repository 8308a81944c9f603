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
