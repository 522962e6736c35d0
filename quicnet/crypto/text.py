"""Human-readable dumps of keys, certificates and CSRs (``-text``)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from quicnet.crypto.certs import Certificate, CertificateRequest, format_fingerprint
from quicnet.crypto.keys import PrivateKey, PublicKey
from quicnet.crypto.oids import oid_name

__all__ = ["certificate_text", "csr_text", "private_key_text", "public_key_text"]


def _hex_block(data: bytes, indent: str = "    ") -> list[str]:
    octets = [f"{b:02x}" for b in data]
    return [indent + ":".join(octets[i : i + 15]) for i in range(0, len(octets), 15)]


def _public_lines(key: PublicKey, indent: str = "") -> list[str]:
    k = key.to_cryptography()
    lines: list[str] = []
    if isinstance(k, rsa.RSAPublicKey):
        n = k.public_numbers()
        lines.append(f"{indent}Modulus:")
        lines += _hex_block(n.n.to_bytes((n.n.bit_length() + 8) // 8, "big"), indent + "    ")
        lines.append(f"{indent}Exponent: {n.e} (0x{n.e:x})")
    else:
        lines.append(f"{indent}pub:")
        lines += _hex_block(key.raw_bytes(), indent + "    ")
    if isinstance(k, ec.EllipticCurvePublicKey):
        lines.append(f"{indent}NIST CURVE: {key.curve}")
    return lines


def _size_text(key: PublicKey | PrivateKey) -> str:
    return f" ({key.key_size} bit)" if key.key_size else ""


def public_key_text(key: PublicKey) -> str:
    """A human-readable dump of ``key``, as ``openssl pkey -pubin -text`` prints."""
    lines = [f"{key.description} Public-Key{_size_text(key)}"]
    lines += _public_lines(key)
    lines.append(f"SPKI SHA256 Fingerprint={format_fingerprint(key.fingerprint())}")
    return "\n".join(lines) + "\n"


def private_key_text(key: PrivateKey) -> str:
    """A human-readable dump of ``key``, as ``openssl pkey -text`` prints.

    It includes the private value: treat the text as a secret.
    """
    lines = [f"{key.description} Private-Key{_size_text(key)}"]
    k = key.to_cryptography()
    if isinstance(k, rsa.RSAPrivateKey):
        p = k.private_numbers()
        lines.append("privateExponent:")
        lines += _hex_block(p.d.to_bytes((p.d.bit_length() + 7) // 8, "big"))
    elif isinstance(k, ec.EllipticCurvePrivateKey):
        v = k.private_numbers().private_value
        lines.append("priv:")
        lines += _hex_block(v.to_bytes((k.curve.key_size + 7) // 8, "big"))
    else:
        lines.append("priv:")
        lines += _hex_block(
            k.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
        )
    lines += _public_lines(key.public_key())
    return "\n".join(lines) + "\n"


def _general_names(names: x509.SubjectAlternativeName) -> str:
    parts = []
    for n in names:
        if isinstance(n, x509.DNSName):
            parts.append(f"DNS:{n.value}")
        elif isinstance(n, x509.IPAddress):
            parts.append(f"IP Address:{n.value}")
        elif isinstance(n, x509.RFC822Name):
            parts.append(f"email:{n.value}")
        elif isinstance(n, x509.UniformResourceIdentifier):
            parts.append(f"URI:{n.value}")
        else:
            parts.append(type(n).__name__)
    return ", ".join(parts)


def _extension_lines(extensions: x509.Extensions) -> list[str]:
    lines = ["        X509v3 extensions:"]
    for ext in extensions:
        name = oid_name(ext.oid)
        lines.append(f"            {name}:{' critical' if ext.critical else ''}")
        v = ext.value
        if isinstance(v, x509.BasicConstraints):
            text = f"CA:{'TRUE' if v.ca else 'FALSE'}"
            if v.path_length is not None:
                text += f", pathlen:{v.path_length}"
        elif isinstance(v, x509.KeyUsage):
            flags = [
                ("Digital Signature", v.digital_signature),
                ("Key Encipherment", v.key_encipherment),
                ("Certificate Sign", v.key_cert_sign),
                ("CRL Sign", v.crl_sign),
                ("Key Agreement", v.key_agreement),
            ]
            text = ", ".join(label for label, on in flags if on)
        elif isinstance(v, x509.ExtendedKeyUsage):
            text = ", ".join(oid_name(u) for u in v)
        elif isinstance(v, x509.SubjectAlternativeName):
            text = _general_names(v)
        elif isinstance(v, x509.SubjectKeyIdentifier):
            text = format_fingerprint(v.digest)
        elif isinstance(v, x509.AuthorityKeyIdentifier):
            text = (
                format_fingerprint(v.key_identifier) if v.key_identifier else "(issuer and serial)"
            )
        else:
            text = repr(v)
        lines.append(f"                {text}")
    return lines


def _serial_text(serial: int) -> str:
    sign = "-" if serial < 0 else ""
    magnitude = abs(serial)
    return (
        sign
        + format_fingerprint(
            magnitude.to_bytes((magnitude.bit_length() + 7) // 8 or 1, "big")
        ).lower()
    )


def certificate_text(cert: Certificate) -> str:
    """A human-readable dump of ``cert``, as ``openssl x509 -text`` prints."""
    c = cert.to_cryptography()
    public = cert.public_key()
    lines = [
        "Certificate:",
        "    Data:",
        f"        Version: {c.version.value + 1} (0x{c.version.value:x})",
        "        Serial Number:",
        f"            {_serial_text(c.serial_number)}",
        f"        Signature Algorithm: {cert.signature_algorithm}",
        f"        Issuer: {cert.issuer}",
        "        Validity",
        f"            Not Before: {cert.not_before:%b %d %H:%M:%S %Y} GMT",
        f"            Not After : {cert.not_after:%b %d %H:%M:%S %Y} GMT",
        f"        Subject: {cert.subject}",
        "        Subject Public Key Info:",
        f"            Public Key Algorithm: {public.description}{_size_text(public)}",
    ]
    lines += _public_lines(public, "                ")
    lines += _extension_lines(cert.extensions())
    lines.append(f"    Signature Algorithm: {cert.signature_algorithm}")
    lines.append(f"SHA256 Fingerprint={format_fingerprint(cert.fingerprint())}")
    return "\n".join(lines) + "\n"


def csr_text(csr: CertificateRequest) -> str:
    """A human-readable dump of ``csr``, as ``openssl req -text`` prints."""
    public = csr.public_key()
    lines = [
        "Certificate Request:",
        "    Data:",
        "        Version: 1 (0x0)",
        f"        Subject: {csr.subject}",
        "        Subject Public Key Info:",
        f"            Public Key Algorithm: {public.description}{_size_text(public)}",
    ]
    lines += _public_lines(public, "                ")
    extensions = csr.extensions()
    if len(extensions):
        lines += _extension_lines(extensions)
    return "\n".join(lines) + "\n"
