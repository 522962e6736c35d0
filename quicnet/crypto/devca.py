"""A small on-disk development CA (what ``quicnet ca`` drives).

Layout of the directory, close to OpenSSL's ``ca`` so its tools can read it::

    ca.pem              the root certificate
    private/ca.key      its key (mode 0600)
    serial              next serial number, hex
    index.txt           one line per issued certificate (OpenSSL's format,
                        see :mod:`quicnet.crypto.caindex`); revocations too
    index.txt.attr      ``unique_subject = no``, for OpenSSL's ``ca``
    crlnumber           number of the next CRL, hex
    certs/SERIAL.pem    every issued certificate
    private/SERIAL.key  keys the CA generated for subjects (mode 0600)

``openssl ca`` with ``database = DIR/index.txt`` and ``crlnumber =
DIR/crlnumber`` can revoke and make CRLs over the same directory.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from quicnet.crypto.caindex import (
    OPENSSL_REASONS,
    IndexEntry,
    format_index,
    openssl_serial,
    parse_index,
)
from quicnet.crypto.certs import (
    Certificate,
    CertificateRequest,
    issue_certificate,
    load_certificate,
    make_ca,
    make_csr,
)
from quicnet.crypto.crl import CertificateRevocationList, make_crl
from quicnet.crypto.errors import CryptoError, DecodeError
from quicnet.crypto.keyfile import write_private_file
from quicnet.crypto.keys import PrivateKey, generate_private_key, load_private_key
from quicnet.crypto.random import random_bytes
from quicnet.crypto.revocation import RevocationReason

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
        cls._write_openssl_extras(root)
        return cls(root, password)

    @staticmethod
    def _write_openssl_extras(root: Path) -> None:
        """What OpenSSL's ``ca`` wants beside index.txt (kept if present)."""
        attr = root / "index.txt.attr"
        if not attr.exists():  # a dev CA may re-issue to one subject
            attr.write_text("unique_subject = no\n")
        number = root / "crlnumber"
        if not number.exists():
            number.write_text("01\n")

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
        # OpenSSL index.txt subject: RDNs in encoding order, "/"-separated.
        subject = "/" + "/".join(rdn.rfc4514_string() for rdn in cert.subject_name.rdns)
        entry = IndexEntry("V", cert.not_after, serial, subject)
        with open(self.directory / "index.txt", "a") as f:
            f.write(entry.to_line())
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

    def index(self) -> list[IndexEntry]:
        """The entries of ``index.txt``, in file order."""
        try:
            text = (self.directory / "index.txt").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DecodeError(f"{self.directory}/index.txt is unreadable: {exc}") from None
        return parse_index(text)

    def _write_index(self, entries: Sequence[IndexEntry]) -> None:
        """Replace index.txt whole, so a reader never sees half of it."""
        fd, temporary = tempfile.mkstemp(prefix=".index.", dir=self.directory)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(format_index(entries))
        os.replace(temporary, self.directory / "index.txt")

    def revoke(
        self,
        serial_number: int,
        reason: RevocationReason | None = None,
        *,
        at: datetime.datetime | None = None,
    ) -> IndexEntry:
        """Mark the certificate with ``serial_number`` revoked in index.txt (``openssl ca -revoke``).

        ``removeFromCRL`` takes a certificate off hold (a ``certificateHold``
        revocation) and makes it valid again; a revocation for any other
        reason is final. The next :meth:`gencrl` lists the revocation.
        """
        if reason is not None and reason not in OPENSSL_REASONS:
            raise CryptoError(f"OpenSSL's ca records no {reason.name!r} reason; use another")
        entries = self.index()
        found = [i for i, e in enumerate(entries) if e.serial_number == serial_number]
        if not found:
            raise CryptoError(
                f"serial {openssl_serial(serial_number)} is not in {self.directory}/index.txt"
            )
        i = found[-1]
        entry = entries[i]
        if reason is RevocationReason.removeFromCRL:
            if entry.reason is not RevocationReason.certificateHold:
                raise CryptoError(
                    f"serial {openssl_serial(serial_number)} is not on hold: removeFromCRL "
                    "only releases a certificateHold"
                )
            entries[i] = entry.reinstated()
        elif entry.status == "R" and entry.reason is not RevocationReason.certificateHold:
            raise CryptoError(f"serial {openssl_serial(serial_number)} is already revoked")
        else:
            moment = (at or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
            entries[i] = entry.revoked(moment, reason)
        self._write_index(entries)
        return entries[i]

    def gencrl(
        self, *, days: int = 30, at: datetime.datetime | None = None
    ) -> CertificateRevocationList:
        """A CRL of every revocation in index.txt, numbered from ``crlnumber`` (``openssl ca -gencrl``)."""
        ca_key = self._key()  # a wrong passphrase fails before the number is used
        self._write_openssl_extras(self.directory)
        number_path = self.directory / "crlnumber"
        try:
            number = int(number_path.read_text().strip(), 16)
        except (OSError, ValueError):
            raise CryptoError(f"{number_path} is missing or not hex") from None
        revoked = [r for e in self.index() if (r := e.revocation) is not None]
        crl = make_crl(
            self.certificate,
            ca_key,
            revoked,
            crl_number=number,
            days=days,
            this_update=at,
        )
        number_path.write_text(openssl_serial(number + 1) + "\n")
        return crl
