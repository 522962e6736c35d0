"""A small on-disk development CA (what ``quicnet ca`` drives).

Layout of the directory, close to OpenSSL's ``ca`` so its tools can read it::

    ca.pem              the root certificate
    private/ca.key      its key (mode 0600)
    serial              next serial number, hex
    index.txt           one line per issued certificate (OpenSSL's format)
    certs/SERIAL.pem    every issued certificate
    private/SERIAL.key  keys the CA generated for subjects (mode 0600)
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from quicnet.crypto.certs import (
    Certificate,
    CertificateRequest,
    issue_certificate,
    load_certificate,
    make_ca,
    make_csr,
)
from quicnet.crypto.errors import CryptoError
from quicnet.crypto.keyfile import write_private_file
from quicnet.crypto.keys import PrivateKey, generate_private_key, load_private_key
from quicnet.crypto.random import random_bytes

__all__ = ["DevCA", "IssuedCertificate"]


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """One line of the CA's index."""

    serial_number: int
    subject: str
    not_after: datetime.datetime
    certificate_path: Path
    key_path: Path | None


class DevCA:
    """A development CA rooted at ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], password: bytes | None = None) -> None:
        self.directory = Path(directory)
        if not (self.directory / "ca.pem").is_file():
            raise CryptoError(
                f"{self.directory} is not a quicnet CA (no ca.pem); run 'ca init' first"
            )
        self.certificate = load_certificate((self.directory / "ca.pem").read_bytes())
        self._password = password

    def _key(self) -> PrivateKey:
        """The CA key, read only when something is signed."""
        return load_private_key(
            (self.directory / "private" / "ca.key").read_bytes(), self._password
        )

    @classmethod
    def init(
        cls,
        directory: str | os.PathLike[str],
        subject: str = "/CN=quicnet development CA",
        *,
        key: PrivateKey | None = None,
        days: int = 3650,
        password: bytes | None = None,
    ) -> DevCA:
        """Create the directory, a root key and a self-signed root certificate."""
        root = Path(directory)
        if (root / "ca.pem").exists():
            raise CryptoError(f"{root} already holds a CA (ca.pem exists)")
        key = key or generate_private_key("EC", curve="P-256")
        cert = make_ca(key, subject, days=days)
        (root / "certs").mkdir(parents=True, exist_ok=True)
        (root / "private").mkdir(mode=0o700, exist_ok=True)
        write_private_file(root / "private" / "ca.key", key.to_pem(password))
        (root / "ca.pem").write_bytes(cert.to_pem())
        (root / "serial").write_text(f"{int.from_bytes(random_bytes(8), 'big') | 1 << 62:X}\n")
        (root / "index.txt").write_text("")
        return cls(root, password)

    def _peek_serial(self) -> int:
        try:
            return int((self.directory / "serial").read_text().strip(), 16)
        except (OSError, ValueError):
            raise CryptoError(f"{self.directory}/serial is missing or not hex") from None

    def _take_serial(self) -> int:
        serial = self._peek_serial()
        text = f"{serial + 1:X}"
        (self.directory / "serial").write_text(("0" + text if len(text) % 2 else text) + "\n")
        return serial

    def issue(
        self,
        subject: str | None = None,
        *,
        names: Sequence[str] = (),
        csr: CertificateRequest | None = None,
        days: int = 365,
        is_ca: bool = False,
        key_algorithm: str = "EC",
    ) -> IssuedCertificate:
        """Issue a certificate: from ``csr``, or for a fresh key made here for ``subject``."""
        ca_key = self._key()  # fails first on a wrong passphrase: nothing written
        key: PrivateKey | None = None
        if csr is None:
            if not subject:
                raise CryptoError("give a subject (or a CSR) to issue a certificate")
            key = generate_private_key(key_algorithm)
            csr = make_csr(key, subject, names=names)
        serial = self._peek_serial()
        cert = issue_certificate(
            csr,
            self.certificate,
            ca_key,
            days=days,
            is_ca=is_ca,
            names=list(names) or None,
            serial_number=serial,
        )
        self._take_serial()
        key_path: Path | None = None
        if key is not None:
            key_path = self.directory / "private" / f"{serial:X}.key"
            write_private_file(key_path, key.to_pem())
        cert_path = self.directory / "certs" / f"{serial:X}.pem"
        cert_path.write_bytes(cert.to_pem())
        # OpenSSL index.txt: status, expiry (YYMMDDHHMMSSZ), revocation, serial, file, subject
        # OpenSSL index.txt subject: RDNs in encoding order, "/"-separated.
        subject = "/" + "/".join(rdn.rfc4514_string() for rdn in cert._cert.subject.rdns)
        line = f"V\t{cert.not_after:%y%m%d%H%M%S}Z\t\t{serial:X}\tunknown\t{subject}\n"
        with open(self.directory / "index.txt", "a") as f:
            f.write(line)
        return IssuedCertificate(serial, cert.subject, cert.not_after, cert_path, key_path)

    def issued(self) -> list[IssuedCertificate]:
        """Every certificate this CA issued, oldest first."""
        result = []
        for path in sorted((self.directory / "certs").glob("*.pem"), key=lambda p: int(p.stem, 16)):
            cert: Certificate = load_certificate(path.read_bytes())
            key_path = self.directory / "private" / f"{path.stem}.key"
            result.append(
                IssuedCertificate(
                    cert.serial_number,
                    cert.subject,
                    cert.not_after,
                    path,
                    key_path if key_path.exists() else None,
                )
            )
        return result
