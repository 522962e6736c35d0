"""HKDF (RFC 5869) and the TLS 1.3 derivations built on it (RFC 8446 §7.1)."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.hashes import HashAlgorithm
from cryptography.hazmat.primitives.hmac import HMAC as _HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from quicnet.crypto.errors import CryptoError
from quicnet.crypto.hashes import digest, hash_algorithm, hmac_digest

__all__ = [
    "ExpandKey",
    "derive_secret",
    "hkdf_expand",
    "hkdf_expand_label",
    "hkdf_expand_labels",
    "hkdf_extract",
]


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM); an empty salt means HashLen zeros."""
    if not salt:
        salt = bytes(hash_algorithm(hash_name).digest_size)
    return hmac_digest(hash_name, salt, ikm)


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand(PRK, info, L)."""
    if length < 0:
        raise CryptoError(f"HKDF-Expand: negative length {length}")
    if length == 0:
        return b""
    algorithm = hash_algorithm(hash_name)
    if length <= algorithm.digest_size:  # one block: T(1) = HMAC(PRK, info || 0x01)
        return hmac_digest(hash_name, prk, info + b"\x01")[:length]
    try:
        return HKDFExpand(algorithm, length, info).derive(prk)
    except ValueError as exc:  # L > 255 * HashLen
        raise CryptoError(f"HKDF-Expand: {exc}") from None


#: pyca hash objects by name, for the derivations below (a dict look-up, no call).
_ALGORITHMS: dict[str, HashAlgorithm] = {}


def _algorithm(hash_name: str) -> HashAlgorithm:
    algorithm = _ALGORITHMS[hash_name] = hash_algorithm(hash_name)
    return algorithm


#: The HkdfLabel bytes before the context (uint16 length, opaque label<7..255>), by
#: ``(label, length)``: the labels of TLS and QUIC are a few constants. Bounded, since
#: an exporter's label comes from the application.
_LABEL_PREFIXES: dict[tuple[bytes, int], bytes] = {}
_LABEL_PREFIXES_MAX = 64


def _label_prefix(label: bytes, length: int) -> bytes:
    prefix = _LABEL_PREFIXES.get((label, length))
    if prefix is not None:
        return prefix
    full_label = b"tls13 " + label
    if not 0 <= length < 1 << 16:
        raise CryptoError(f"HKDF-Expand-Label: length {length} does not fit 16 bits")
    if len(full_label) > 255:
        raise CryptoError("HKDF-Expand-Label: label or context longer than 255 bytes")
    prefix = length.to_bytes(2, "big") + bytes((len(full_label),)) + full_label
    if len(_LABEL_PREFIXES) < _LABEL_PREFIXES_MAX:
        _LABEL_PREFIXES[(label, length)] = prefix
    return prefix


#: ``hkdf_expand_label``'s plan by ``(hash name, label, length)`` (TLS and QUIC use a few
#: constant ones; bounded, an exporter's label comes from the application): the hash, the
#: HkdfLabel prefix, and whether the output is one block (RFC 5869 §2.3: T(1) only).
_SINGLE_PLANS: dict[tuple[str, bytes, int], tuple[HashAlgorithm, bytes, bool]] = {}


def _single_plan(hash_name: str, label: bytes, length: int) -> tuple[HashAlgorithm, bytes, bool]:
    prefix = _label_prefix(label, length)
    algorithm = _ALGORITHMS.get(hash_name) or _algorithm(hash_name)
    plan = (algorithm, prefix, 0 < length <= algorithm.digest_size)
    if len(_SINGLE_PLANS) < _LABEL_PREFIXES_MAX:
        _SINGLE_PLANS[(hash_name, label, length)] = plan
    return plan


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1); ``label`` is given without the ``tls13 `` prefix."""
    plan = _SINGLE_PLANS.get((hash_name, label, length)) or _single_plan(hash_name, label, length)
    algorithm, prefix, one_block = plan
    if len(context) > 255:
        raise CryptoError("HKDF-Expand-Label: label or context longer than 255 bytes")
    if one_block:
        # One block: T(1) = HMAC(Secret, HkdfLabel || 0x01) (RFC 5869 §2.3).
        h = _HMAC(secret, algorithm)
        h.update(b"".join((prefix, bytes((len(context),)), context, b"\x01")))
        return h.finalize()[:length]
    return hkdf_expand(hash_name, secret, prefix + bytes((len(context),)) + context, length)


#: ``hkdf_expand_labels``' plan by ``(hash name, labels)`` (a few constant pairs): the
#: hash; whether every label is one block long (RFC 5869 §2.3: T(1) only); each label's
#: HMAC input with the empty context (its HkdfLabel: the prefix, a zero context length,
#: then the block counter 0x01) and each label's prefix, with its length, all but the
#: last label's apart (the last one takes the keyed HMAC itself, not a copy).
_Entries = tuple[tuple[bytes, int], ...]
_Plan = tuple[HashAlgorithm, bool, _Entries, tuple[bytes, int], _Entries, tuple[bytes, int]]
_LABEL_PLANS: dict[tuple[str, Sequence[tuple[bytes, int]]], _Plan] = {}  # tuple keys only


def _label_plan(hash_name: str, labels: Sequence[tuple[bytes, int]]) -> _Plan:
    algorithm = _ALGORITHMS.get(hash_name) or _algorithm(hash_name)
    prefixes = tuple((_label_prefix(label, length), length) for label, length in labels)
    lengths = [length for _, length in labels] or [0]
    one_block = min(lengths) > 0 and max(lengths) <= algorithm.digest_size
    empty_context = tuple((prefix + b"\x00\x01", length) for prefix, length in prefixes)
    nothing = (b"", 0)  # no labels: never one block, never read
    plan = (
        algorithm,
        one_block,
        empty_context[:-1],
        empty_context[-1] if empty_context else nothing,
        prefixes[:-1],
        prefixes[-1] if prefixes else nothing,
    )
    if type(labels) is tuple and len(_LABEL_PLANS) < _LABEL_PREFIXES_MAX:
        _LABEL_PLANS[(hash_name, labels)] = plan
    return plan


def hkdf_expand_labels(
    hash_name: str, secret: bytes, labels: Sequence[tuple[bytes, int]], context: bytes = b""
) -> list[bytes]:
    """HKDF-Expand-Label with one ``context`` (empty by default) for each ``(label,
    length)`` of one ``secret`` (a packet key's key, IV and header-protection key; the
    traffic secrets of one transcript hash): the HMAC is keyed once and copied for each
    label but the last, which takes it as it is."""
    plan = _plan_of(hash_name, labels)
    if not plan[1]:
        return _each_on_its_own(hash_name, secret, labels, context)
    return _expand_planned(_HMAC(secret, plan[0]), plan, context, True)


def _each_on_its_own(
    hash_name: str, secret: bytes, labels: Sequence[tuple[bytes, int]], context: bytes
) -> list[bytes]:
    """Some label is empty or longer than one block: each label expanded on its own. (A
    function apart: its comprehension would make cells of the callers' arguments on
    every call, the planned ones' too.)"""
    return [
        hkdf_expand_label(hash_name, secret, label, context, length) for label, length in labels
    ]


def _expand_labels(
    keyed: _HMAC,
    hash_name: str,
    secret: bytes,
    labels: Sequence[tuple[bytes, int]],
    context: bytes,
    last: bool,
) -> list[bytes]:
    """:func:`hkdf_expand_labels` with the HMAC ``keyed`` by ``secret`` already; ``last``:
    the last label takes ``keyed`` itself, not a copy."""
    plan = _plan_of(hash_name, labels)
    if not plan[1]:
        return _each_on_its_own(hash_name, secret, labels, context)
    return _expand_planned(keyed, plan, context, last)


def _plan_of(hash_name: str, labels: Sequence[tuple[bytes, int]]) -> _Plan:
    try:
        plan = _LABEL_PLANS.get((hash_name, labels))
    except TypeError:  # labels in a list (unhashable): never kept, planned each call
        plan = None
    return plan or _label_plan(hash_name, labels)


def _expand_planned(keyed: _HMAC, plan: _Plan, context: bytes, last: bool) -> list[bytes]:
    """The labels of a one-block ``plan`` from ``keyed``; ``last``: the last label takes
    ``keyed`` itself, not a copy."""
    _, _, empty_head, empty_last, prefix_head, prefix_last = plan
    if context:
        return _expand_with(keyed, prefix_head, prefix_last, context, last)
    # The packet keys: each label and its empty context are one constant.
    out = []
    for info, length in empty_head:
        h = keyed.copy()
        h.update(info)
        out.append(h.finalize()[:length])
    info, length = empty_last
    h = keyed if last else keyed.copy()
    h.update(info)
    out.append(h.finalize()[:length])
    return out


def _expand_with(
    keyed: _HMAC,
    prefix_head: _Entries,
    prefix_last: tuple[bytes, int],
    context: bytes,
    last: bool,
) -> list[bytes]:
    """The labels (their HkdfLabel prefixes) with a non-empty ``context``, from ``keyed``."""
    if len(context) > 255:
        raise CryptoError("HKDF-Expand-Label: label or context longer than 255 bytes")
    # HkdfLabel's context, then the block counter (RFC 5869 §2.3: T(1)).
    tail = bytes((len(context),)) + context + b"\x01"
    out = []
    for prefix, length in prefix_head:
        h = keyed.copy()
        h.update(prefix + tail)
        out.append(h.finalize()[:length])
    prefix, length = prefix_last
    h = keyed if last else keyed.copy()
    h.update(prefix + tail)
    out.append(h.finalize()[:length])
    return out


class ExpandKey:
    """One secret keyed once for HKDF-Expand-Label (RFC 8446 §7.1), for a secret expanded
    at several moments: a handshake traffic secret (its packet keys, then its Finished
    key), the master secret (the traffic secrets, then the resumption master secret). Its
    HMAC is keyed at construction and copied for each expansion, where keying it again
    would cost several times a copy. It belongs to the connection whose secret it holds.

    ``last=True`` marks the key's last use: the keyed HMAC itself is used, not a copy,
    and the key cannot expand again (RuntimeError).
    """

    __slots__ = ("_keyed", "hash_name", "secret")

    def __init__(self, hash_name: str, secret: bytes) -> None:
        self.hash_name = hash_name
        self.secret = secret
        algorithm = _ALGORITHMS.get(hash_name) or _algorithm(hash_name)
        self._keyed: _HMAC | None = _HMAC(secret, algorithm)

    def expand_labels(
        self, labels: Sequence[tuple[bytes, int]], context: bytes = b"", *, last: bool = False
    ) -> list[bytes]:
        """:func:`hkdf_expand_labels` of this secret."""
        keyed = self._keyed
        if keyed is None:
            raise RuntimeError("this ExpandKey had its last use")
        if last:
            self._keyed = None
        return _expand_labels(keyed, self.hash_name, self.secret, labels, context, last)

    def expand_label(
        self, label: bytes, context: bytes, length: int, *, last: bool = False
    ) -> bytes:
        """:func:`hkdf_expand_label` of this secret."""
        keyed = self._keyed
        if keyed is None:
            raise RuntimeError("this ExpandKey had its last use")
        hash_name = self.hash_name
        plan = _SINGLE_PLANS.get((hash_name, label, length)) or _single_plan(
            hash_name, label, length
        )
        if not plan[2] or len(context) > 255:  # not one block, or an error to raise
            return hkdf_expand_label(hash_name, self.secret, label, context, length)
        if last:
            self._keyed = None
            h = keyed
        else:
            h = keyed.copy()
        # One block: T(1) = HMAC(Secret, HkdfLabel || 0x01) (RFC 5869 §2.3).
        h.update(b"".join((plan[1], bytes((len(context),)), context, b"\x01")))
        return h.finalize()[:length]


def derive_secret(hash_name: str, secret: bytes, label: bytes, messages: bytes) -> bytes:
    """Derive-Secret(Secret, Label, Messages) (RFC 8446 §7.1).

    ``messages`` is the concatenated handshake transcript; pass ``b""`` for
    the "derived" secrets, whose context is the hash of no messages.
    """
    transcript_hash = digest(hash_name, messages)
    return hkdf_expand_label(hash_name, secret, label, transcript_hash, len(transcript_hash))
