"""OCSP responses as text, laid out as ``openssl ocsp -resp_text`` prints them."""

from __future__ import annotations

import datetime

from quicnet.crypto.ocsp import CertStatus, OCSPResponse, serial_hex, wrapped_nonce

__all__ = ["openssl_time", "response_text"]


def openssl_time(moment: datetime.datetime) -> str:
    """``Jan  2 03:04:05 2026 GMT``, as OpenSSL prints times."""
    return f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S %Y} GMT"


def _hex_lines(data: bytes, indent: str) -> list[str]:
    pairs = [f"{b:02x}" for b in data]
    rows = [":".join(pairs[i : i + 18]) for i in range(0, len(pairs), 18)]
    return [indent + row + ("" if i == len(rows) - 1 else ":") for i, row in enumerate(rows)]


def response_text(response: OCSPResponse) -> str:
    """The response decoded: status, responder, every SingleResponse, the nonce."""
    status = response.response_status
    lines = [
        "OCSP Response Data:",
        f"    OCSP Response Status: {status.name} (0x{status.value:x})",
    ]
    if not response.is_successful:
        return "\n".join(lines) + "\n"
    lines += [
        "    Response Type: Basic OCSP Response",
        "    Version: 1 (0x0)",
        f"    Responder Id: {response.responder_id}",
        f"    Produced At: {openssl_time(response.produced_at)}",
        "    Responses:",
    ]
    for single in response.responses:
        lines += [
            "    Certificate ID:",
            f"      Hash Algorithm: {single.hash_algorithm}",
            f"      Issuer Name Hash: {single.issuer_name_hash.hex().upper()}",
            f"      Issuer Key Hash: {single.issuer_key_hash.hex().upper()}",
            f"      Serial Number: {serial_hex(single.serial_number)}",
            f"    Cert Status: {single.status.value}",
        ]
        if single.status is CertStatus.REVOKED and single.revocation_time is not None:
            lines.append(f"    Revocation Time: {openssl_time(single.revocation_time)}")
            if single.revocation_reason is not None:
                reason = single.revocation_reason
                lines.append(f"    Revocation Reason: {reason.name} (0x{reason.value:x})")
        lines.append(f"    This Update: {openssl_time(single.this_update)}")
        if single.next_update is not None:
            lines.append(f"    Next Update: {openssl_time(single.next_update)}")
        lines.append("")
    nonce = response.nonce
    if nonce is not None:
        lines += [
            "    Response Extensions:",
            "        OCSP Nonce: ",
            f"            {wrapped_nonce(nonce).hex().upper()}",
        ]
    for cert in response.certificates:
        lines.append(f"    Certificate: {cert.subject} (serial {serial_hex(cert.serial_number)})")
    return "\n".join(lines) + "\n"
