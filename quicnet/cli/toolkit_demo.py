"""``demo -toolkit``: the toolkit end to end, in memory, in well under a second.

Make a CA, issue a server certificate from a CSR, verify it (and watch a
wrong name and an expired certificate fail), then agree a post-quantum hybrid
TLS key and protect a packet with it; ``-dir`` writes the CA, certificate and
key for OpenSSL to check.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from quicnet.crypto import (
    Aead,
    AeadAlgorithm,
    CertificateError,
    KeyShare,
    NamedGroup,
    format_fingerprint,
    generate_private_key,
    hkdf_expand_label,
    hkdf_extract,
    issue_certificate,
    make_ca,
    make_csr,
    respond_key_share,
    verify_chain,
)
from quicnet.crypto.keyfile import write_private_file


def _step(text: str, started: float) -> None:
    print(f"  {text:<58} {1000 * (time.perf_counter() - started):7.2f} ms")


def toolkit_demo(directory: str | None) -> None:
    """The toolkit walk-through; with ``directory``, also write its files there."""
    print("quicnet toolkit demo\n")
    t = time.perf_counter()
    ca_key = generate_private_key("Ed25519")
    ca = make_ca(ca_key, "/CN=quicnet demo CA", days=30)
    _step(f"CA {ca.subject!r} (Ed25519)", t)

    t = time.perf_counter()
    server_key = generate_private_key("EC", curve="P-256")
    csr = make_csr(server_key, "/CN=localhost", names=["localhost", "127.0.0.1", "::1"])
    csr.verify_signature()
    _step("server key (EC P-256) and CSR for localhost, 127.0.0.1, ::1", t)

    t = time.perf_counter()
    leaf = issue_certificate(csr, ca, ca_key, days=7)
    _step(f"issued serial {leaf.serial_number:X}"[:58], t)
    print(f"    SHA-256 fingerprint {format_fingerprint(leaf.fingerprint())}")

    t = time.perf_counter()
    path = verify_chain([leaf], [ca], name="localhost")
    _step(f"verified for 'localhost': {' -> '.join(c.subject for c in path)}", t)
    verify_chain([leaf], [ca], name="::1")
    print("  verified for '::1' as well")

    for label, kwargs in (
        ("wrong name 'example.com'", {"name": "example.com"}),
        (
            "in 30 days (expired)",
            {"at": datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)},
        ),
    ):
        try:
            verify_chain([leaf], [ca], **kwargs)
        except CertificateError as exc:
            print(f"  rejected, {label}: {type(exc).__name__}")
        else:  # pragma: no cover - would be a bug
            raise SystemExit(f"demo: {label} was accepted")

    t = time.perf_counter()
    client = KeyShare(NamedGroup.X25519MLKEM768)
    server_share, server_secret = respond_key_share(NamedGroup.X25519MLKEM768, client.key_exchange)
    assert client.shared_secret(server_share) == server_secret
    _step(f"X25519MLKEM768 key agreement ({len(server_secret)}-byte secret)", t)

    secret = hkdf_extract("sha256", b"", server_secret)
    key = hkdf_expand_label("sha256", secret, b"key", b"", 16)
    iv = hkdf_expand_label("sha256", secret, b"iv", b"", 12)
    aead = Aead(AeadAlgorithm.AES_128_GCM, key, iv)
    sealed = aead.seal(0, b"hello, quicnet", b"header")
    assert aead.open(0, sealed, b"header") == b"hello, quicnet"
    print(f"  AES-128-GCM packet sealed and opened ({len(sealed)} bytes on the wire)")

    if directory:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "ca.pem").write_bytes(ca.to_pem())
        (out / "server.pem").write_bytes(leaf.to_pem())
        write_private_file(out / "server.key", server_key.to_pem())
        print(f"\n  wrote {out}/ca.pem, server.pem, server.key")
        print(f"  check with: openssl verify -CAfile {out}/ca.pem {out}/server.pem")
