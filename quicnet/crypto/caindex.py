"""OpenSSL's ``ca`` database, ``index.txt``: one tab-separated line per certificate.

Each line has six fields: status (``V`` valid, ``R`` revoked, ``E``
expired), expiry time, revocation (``time[,reason[,detail]]``, empty unless
revoked), serial (upper-case hex, an even number of digits), file name
(``unknown``) and subject (``/C=../CN=..``, in encoding order). Times are
ASN.1 UTCTime ``YYMMDDHHMMSSZ`` (GeneralizedTime ``YYYYMMDDHHMMSSZ`` from
2050 for the expiry, as the certificate encodes it; RFC 5280 §4.1.2.5).
Reasons use OpenSSL's names (RFC 5280 §5.3.1 CRLReason).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, replace

from quicnet.crypto.errors import DecodeError
from quicnet.crypto.revocation import Revocation, RevocationReason

__all__ = [
    "OPENSSL_REASONS",
    "IndexEntry",
    "format_index",
    "openssl_serial",
    "parse_index",
]

#: The reasons ``openssl ca -crl_reason`` takes (and so may appear in its index).
OPENSSL_REASONS = (
    RevocationReason.unspecified,
    RevocationReason.keyCompromise,
    RevocationReason.CACompromise,
    RevocationReason.affiliationChanged,
    RevocationReason.superseded,
    RevocationReason.cessationOfOperation,
    RevocationReason.certificateHold,
    RevocationReason.removeFromCRL,
)
_UTC = datetime.UTC
# OpenSSL's forms that carry a detail: -crl_hold OID, -crl_compromise / -crl_CA_compromise TIME.
_DETAILED = {
    "holdinstruction": RevocationReason.certificateHold,
    "keytime": RevocationReason.keyCompromise,
    "cakeytime": RevocationReason.CACompromise,
}
_DETAIL_NAMES = {
    RevocationReason.certificateHold: "holdInstruction",
    RevocationReason.keyCompromise: "keyTime",
    RevocationReason.CACompromise: "CAkeyTime",
}


def openssl_serial(serial: int) -> str:
    """Upper-case hex with an even number of digits, as OpenSSL's ``ca`` writes a serial."""
    text = f"{serial:X}"
    return "0" + text if len(text) % 2 else text


def _format_time(moment: datetime.datetime, *, generalized_from_2050: bool) -> str:
    moment = moment.astimezone(_UTC)
    if generalized_from_2050 and moment.year >= 2050:
        return f"{moment:%Y%m%d%H%M%S}Z"
    return f"{moment:%y%m%d%H%M%S}Z"


def _parse_time(text: str, what: str) -> datetime.datetime:
    if len(text) not in (13, 15) or not text.endswith("Z") or not text[:-1].isdigit():
        raise DecodeError(f"index.txt: {what} {text!r} is not YYMMDDHHMMSSZ")
    digits = text[:-1]
    if len(digits) == 12:  # UTCTime: 50-99 are 19xx (RFC 5280 §4.1.2.5.1)
        year = int(digits[:2])
        digits = str(1900 + year if year >= 50 else 2000 + year) + digits[2:]
    try:
        return datetime.datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=_UTC)
    except ValueError:
        raise DecodeError(f"index.txt: {what} {text!r} is not a valid time") from None


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One line of ``index.txt``."""

    status: str
    expires: datetime.datetime
    serial_number: int
    subject: str
    revoked_at: datetime.datetime | None = None
    reason: RevocationReason | None = None
    #: OpenSSL's hold instruction OID or compromise time (``holdInstruction,OID``,
    #: ``keyTime,TIME``, ``CAkeyTime,TIME``), kept verbatim.
    reason_detail: str = ""
    filename: str = "unknown"

    @property
    def revocation(self) -> Revocation | None:
        """The CRL entry this line makes (None unless revoked)."""
        if self.status != "R" or self.revoked_at is None:
            return None
        return Revocation(self.serial_number, self.revoked_at, self.reason)

    def revoked(self, at: datetime.datetime, reason: RevocationReason | None) -> IndexEntry:
        """This entry, marked revoked at ``at`` for ``reason``."""
        return replace(self, status="R", revoked_at=at, reason=reason, reason_detail="")

    def reinstated(self) -> IndexEntry:
        """This entry, valid again (a certificate taken off hold)."""
        return replace(self, status="V", revoked_at=None, reason=None, reason_detail="")

    def to_line(self) -> str:
        """This entry as a tab-separated ``index.txt`` line, newline included (``openssl ca``)."""
        revocation = ""
        if self.revoked_at is not None:
            revocation = _format_time(self.revoked_at, generalized_from_2050=False)
            if self.reason is not None and self.reason_detail and self.reason in _DETAIL_NAMES:
                revocation += f",{_DETAIL_NAMES[self.reason]},{self.reason_detail}"
            elif self.reason is not None:
                revocation += f",{self.reason.name}"
        fields = (
            self.status,
            _format_time(self.expires, generalized_from_2050=True),
            revocation,
            openssl_serial(self.serial_number),
            self.filename,
            self.subject,
        )
        return "\t".join(fields) + "\n"


def _parse_revocation(
    text: str, lineno: int
) -> tuple[datetime.datetime, RevocationReason | None, str]:
    when, _, rest = text.partition(",")
    at = _parse_time(when, f"line {lineno}: revocation date")
    if not rest:
        return at, None, ""
    name, _, detail = rest.partition(",")
    if name.lower() in _DETAILED:
        if not detail:
            raise DecodeError(f"index.txt line {lineno}: {name} without its value")
        return at, _DETAILED[name.lower()], detail
    try:
        reason = RevocationReason.from_name(name)
        detail = ""  # OpenSSL reads nothing after a plain reason
    except ValueError:
        raise DecodeError(f"index.txt line {lineno}: unknown revocation reason {name!r}") from None
    return at, reason, detail


def parse_index(text: str) -> list[IndexEntry]:
    """Every entry of an ``index.txt``; :class:`DecodeError` names the first bad line."""
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 6:
            raise DecodeError(f"index.txt line {lineno}: {len(fields)} fields, expected 6")
        status, expiry, revocation, serial, filename, subject = fields
        if status not in ("V", "R", "E"):
            raise DecodeError(f"index.txt line {lineno}: status {status!r} is not V, R or E")
        if not serial or any(c not in "0123456789abcdefABCDEF" for c in serial):
            raise DecodeError(f"index.txt line {lineno}: serial {serial!r} is not hex")
        revoked_at, reason, detail = None, None, ""
        if status == "R":
            revoked_at, reason, detail = _parse_revocation(revocation, lineno)
        elif revocation:
            raise DecodeError(f"index.txt line {lineno}: status {status} with a revocation date")
        entries.append(
            IndexEntry(
                status=status,
                expires=_parse_time(expiry, f"line {lineno}: expiry"),
                serial_number=int(serial, 16),
                subject=subject,
                revoked_at=revoked_at,
                reason=reason,
                reason_detail=detail,
                filename=filename,
            )
        )
    return entries


def format_index(entries: Iterable[IndexEntry]) -> str:
    """The ``index.txt`` text for ``entries`` (the inverse of :func:`parse_index`)."""
    return "".join(entry.to_line() for entry in entries)
