"""TLS Encrypted Client Hello (draft-ietf-tls-esni, version 0xfe0d).

The wire formats (ECHConfigList §4, the ``encrypted_client_hello`` extension
§5, EncodedClientHelloInner §5.1), key generation and the key file, and the
two halves of the protocol the state machines call into:
:class:`ClientECH` (seal the inner ClientHello into the outer, check the
acceptance signal, §6.1) and :func:`server_open` / :func:`confirm_server_hello`
(decrypt, rebuild the inner ClientHello, signal acceptance, §7). Parsers raise
:class:`~quicnet.tls.errors.DecodeError` (alert decode_error).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from quicnet.crypto import constant_time_eq, hkdf_expand_label, hkdf_extract, random_bytes
from quicnet.crypto.errors import CryptoError
from quicnet.crypto.hpke import (
    DEFAULT_SUITE,
    AeadId,
    HpkePrivateKey,
    HpkePublicKey,
    KdfId,
    KemId,
    ReceiverContext,
    SenderContext,
    Suite,
    setup_base_receiver,
    setup_base_sender,
)
from quicnet.crypto.pem import pem_blocks, pem_body
from quicnet.tls import extensions as ext
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.errors import (
    ConfigurationError,
    DecodeError,
    ECHRejected,
    ProtocolViolation,
    UsageError,
)
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.key_schedule import Transcript
from quicnet.tls.messages import (
    ClientHello,
    Extension,
    HandshakeType,
    ServerHello,
    decode_message,
    encode_message,
)
from quicnet.tls.wire import Reader, Writer

__all__ = [
    "ECH_VERSION",
    "ClientECH",
    "ECHConfig",
    "ECHKey",
    "ServerECH",
    "confirm_server_hello",
    "decode_ech_config_list",
    "encode_ech_config_list",
    "generate_ech_key",
    "load_ech_configs",
    "load_ech_key_file",
    "server_open",
]

#: ECHConfig.version and the extension's code point (draft-ietf-tls-esni §4, §11.1).
ECH_VERSION = 0xFE0D
_OUTER, _INNER = 0, 1
_ACCEPT_LABEL = b"ech accept confirmation"
_HRR_ACCEPT_LABEL = b"hrr ech accept confirmation"
_PEM_LABEL = "ECHCONFIG"
_X25519 = KemId.DHKEM_X25519_HKDF_SHA256  # the one KEM offered (RFC 9849 §9 makes it mandatory)
_DEFAULT_SUITES = ((KdfId.HKDF_SHA256, AeadId.AES_128_GCM),)
_KDF_IDS, _AEAD_IDS = frozenset(KdfId), frozenset(AeadId)
#: Extensions of the inner hello that must not leak into the outer one.
_INNER_ONLY = {ET.pre_shared_key, ET.early_data}


@dataclass(frozen=True, slots=True)
class ECHConfig:
    """One ECHConfig (§4) of version 0xfe0d."""

    config_id: int
    kem_id: int
    public_key: bytes
    cipher_suites: tuple[tuple[int, int], ...]
    maximum_name_length: int
    public_name: str
    extensions: bytes = b""

    def encode(self) -> bytes:
        """The whole ECHConfig: version, length and contents (HPKE's info uses this)."""
        c = Writer()
        c.uint8(self.config_id)
        c.uint16(self.kem_id)
        c.vector(self.public_key, 2)
        c.vector(
            b"".join(k.to_bytes(2, "big") + a.to_bytes(2, "big") for k, a in self.cipher_suites), 2
        )
        c.uint8(self.maximum_name_length)
        c.vector(self.public_name.encode("ascii"), 1)
        c.vector(self.extensions, 2)
        w = Writer()
        w.uint16(ECH_VERSION)
        w.vector(c.getvalue(), 2)
        return w.getvalue()

    def supported_suite(self) -> tuple[KdfId, AeadId] | None:
        """The first of the config's HPKE suites this implementation speaks (with a context)."""
        if self.kem_id != _X25519 or len(self.public_key) != 32:
            return None
        for kdf, aead in self.cipher_suites:
            if kdf not in _KDF_IDS or aead not in _AEAD_IDS:
                continue
            if Suite(_X25519, KdfId(kdf), AeadId(aead)).has_contexts:
                return KdfId(kdf), AeadId(aead)
        return None


def _decode_contents(r: Reader) -> ECHConfig | None:
    config_id = r.uint8()
    kem_id = r.uint16()
    public_key = r.vector(2, min_length=1)
    suites_raw = r.vector(2, min_length=4)
    if len(suites_raw) % 4:
        raise DecodeError("ECHConfig cipher_suites is not a list of (KDF, AEAD) pairs")
    suites = tuple(
        (
            int.from_bytes(suites_raw[i : i + 2], "big"),
            int.from_bytes(suites_raw[i + 2 : i + 4], "big"),
        )
        for i in range(0, len(suites_raw), 4)
    )
    max_name = r.uint8()
    name_raw = r.vector(1, min_length=1)
    extensions = r.vector(2)
    r.expect_end("ECHConfigContents")
    try:
        name = name_raw.decode("ascii")
    except UnicodeDecodeError:
        raise DecodeError("ECHConfig public_name is not ASCII") from None
    x = Reader(extensions)
    mandatory = False
    while not x.at_end():
        mandatory |= bool(x.uint16() & 0x8000)
        x.vector(2)
    if mandatory:  # §4.2: a mandatory extension we do not know: skip the config
        return None
    return ECHConfig(config_id, kem_id, public_key, suites, max_name, name, extensions)


def decode_ech_config_list(data: bytes) -> list[ECHConfig]:
    """ECHConfigList (§4): the configs of version 0xfe0d, others skipped (§6.1)."""
    r = Reader(data)
    body = r.sub(2, min_length=1)
    r.expect_end("ECHConfigList")
    configs = []
    while not body.at_end():
        version = body.uint16()
        contents = body.sub(2)
        if version != ECH_VERSION:
            continue
        config = _decode_contents(contents)
        if config is not None:
            configs.append(config)
    return configs


def encode_ech_config_list(configs: Sequence[ECHConfig]) -> bytes:
    """An ECHConfigList holding ``configs`` in order (draft-ietf-tls-esni §4)."""
    w = Writer()
    w.vector(b"".join(c.encode() for c in configs), 2)
    return w.getvalue()


# Keys and the key file -----------------------------------------------------------------


@dataclass(frozen=True)
class ECHKey:
    """An ECHConfig with its HPKE private key (a server's ``ServerConfig.ech_keys``)."""

    config: ECHConfig
    private_key: HpkePrivateKey


def generate_ech_key(
    public_name: str, *, config_id: int | None = None, maximum_name_length: int = 0
) -> ECHKey:
    """A fresh X25519 key and its ECHConfig (HKDF-SHA256, AES-128-GCM)."""
    try:
        raw_name = public_name.encode("ascii")
    except UnicodeEncodeError:
        raise UsageError("public_name must be an ASCII DNS name") from None
    if not 1 <= len(raw_name) <= 255 or not 0 <= maximum_name_length <= 255:
        raise UsageError("public_name is 1-255 bytes and maximum_name_length 0-255")
    key = HpkePrivateKey.generate()
    cid = random_bytes(1)[0] if config_id is None else config_id
    config = ECHConfig(
        cid,
        _X25519,
        key.public_key().to_bytes(),
        tuple((int(k), int(a)) for k, a in _DEFAULT_SUITES),
        maximum_name_length,
        public_name,
    )
    return ECHKey(config, key)


def dump_ech_key_file(keys: Sequence[ECHKey]) -> bytes:
    """PEM: each PKCS#8 private key, then one ECHCONFIG block holding their ECHConfigList
    (the layout ``openssl ech`` writes)."""
    out = b"".join(k.private_key.to_pem() for k in keys)
    body = base64.encodebytes(encode_ech_config_list([k.config for k in keys]))
    return (
        out
        + f"-----BEGIN {_PEM_LABEL}-----\n".encode()
        + body
        + f"-----END {_PEM_LABEL}-----\n".encode()
    )


def load_ech_configs(data: bytes) -> bytes:
    """An ECHConfigList from a PEM ECHCONFIG block, base64 text or raw bytes; checked."""
    blocks = [b for label, b in pem_blocks(data) if label == _PEM_LABEL]
    if blocks:
        raw = pem_body(blocks[0])
    else:
        try:
            raw = base64.b64decode(b"".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raw = data
    if not decode_ech_config_list(raw):
        raise DecodeError("the ECHConfigList holds no config this client supports")
    return raw


def load_ech_key_file(data: bytes) -> list[ECHKey]:
    """The keys of a file :func:`dump_ech_key_file` (or ``openssl ech``) wrote."""
    keys = [HpkePrivateKey.from_pem(b) for label, b in pem_blocks(data) if label == "PRIVATE KEY"]
    configs = decode_ech_config_list(load_ech_configs(data))
    pairs = []
    for config in configs:
        match = [k for k in keys if k.public_key().to_bytes() == config.public_key]
        if not match:
            raise CryptoError(f"no private key for ECHConfig {config.config_id}")
        pairs.append(ECHKey(config, match[0]))
    return pairs


# The extension ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OuterECH:
    """ECHClientHello of type outer (§5)."""

    kdf_id: int
    aead_id: int
    config_id: int
    enc: bytes
    payload: bytes

    def encode(self) -> bytes:
        """The extension body: this ECHClientHello of type outer (draft-ietf-tls-esni §5)."""
        w = Writer()
        w.uint8(_OUTER)
        w.uint16(self.kdf_id)
        w.uint16(self.aead_id)
        w.uint8(self.config_id)
        w.vector(self.enc, 2)
        w.vector(self.payload, 2)
        return w.getvalue()


def decode_ech_client_hello(data: bytes) -> OuterECH | None:
    """The ClientHello's extension: :class:`OuterECH`, or None for type inner."""
    r = Reader(data)
    kind = r.uint8()
    if kind == _INNER:
        r.expect_end("the inner encrypted_client_hello extension")
        return None
    if kind != _OUTER:
        raise DecodeError(f"ECHClientHelloType {kind}", AlertDescription.illegal_parameter)
    outer = OuterECH(r.uint16(), r.uint16(), r.uint8(), r.vector(2), r.vector(2, min_length=1))
    r.expect_end("the encrypted_client_hello extension")
    return outer


def decode_retry_configs(data: bytes) -> bytes:
    """ECHEncryptedExtensions (§5): the retry_configs ECHConfigList, checked for syntax."""
    decode_ech_config_list(data)
    return data


def _hello_body(hello: ClientHello) -> bytes:
    return encode_message(hello)[4:]


def _info(config: ECHConfig) -> bytes:
    return b"tls ech\x00" + config.encode()


def _confirmation(
    hash_name: str, inner_random: bytes, transcript_hash: bytes, label: bytes
) -> bytes:
    """§7.2: HKDF-Expand-Label(HKDF-Extract(0, ClientHelloInner.random), label, hash, 8)."""
    return hkdf_expand_label(
        hash_name, hkdf_extract(hash_name, b"", inner_random), label, transcript_hash, 8
    )


# Client -------------------------------------------------------------------------------


class ClientECH:
    """The client's ECH: a real offer sealed to ``configs``, or GREASE (§6.2)."""

    def __init__(self, config_list: bytes | None) -> None:
        self.config: ECHConfig | None = None
        self._suite: tuple[KdfId, AeadId] | None = None
        if config_list is not None:
            try:
                configs = decode_ech_config_list(config_list)
            except DecodeError as exc:
                raise ConfigurationError(f"ech_configs is not an ECHConfigList: {exc}") from None
            for config in configs:
                suite = config.supported_suite()
                if suite is not None:
                    self.config, self._suite = config, suite
                    break
            if self.config is None:
                raise UsageError("no ECHConfig in ech_configs is supported")
        self._context: SenderContext | None = None
        self._enc = b""
        self.outer_raw = b""
        self.outer_random = b""
        self._sealed = Extension(ET.encrypted_client_hello, b"")
        self.inner_raw = b""
        self.outer_extensions: set[int] = set()
        #: True once the server confirmed ECH, False once it did not; None before.
        self.accepted: bool | None = None
        self.retry_configs: bytes | None = None

    @property
    def grease(self) -> bool:
        """Whether this client sends GREASE ECH, having no config (draft-ietf-tls-esni §6.2)."""
        return self.config is None

    def hello_extension(self) -> Extension:
        """What the ClientHello the state machine builds carries: the inner marker or GREASE."""
        if self.accepted is False or (self.grease and self._sealed.data):
            # §6.1.5: a rejected client's second outer hello repeats the first's offer;
            # §6.2: so does a GREASE client's second hello after HelloRetryRequest.
            return self._sealed
        if self.config is not None:
            return Extension(ET.encrypted_client_hello, bytes((_INNER,)))
        fake = OuterECH(
            DEFAULT_SUITE.kdf,
            DEFAULT_SUITE.aead,
            random_bytes(1)[0],
            random_bytes(DEFAULT_SUITE.enc_length),
            random_bytes(32 * (4 + random_bytes(1)[0] % 4) + 16),
        )
        self._sealed = Extension(ET.encrypted_client_hello, fake.encode())
        return self._sealed

    def outer_hello(self, inner: ClientHello) -> ClientHello:
        """Seal ``inner`` into a ClientHelloOuter that names only the public name (§6.1)."""
        config, suite = self.config, self._suite
        assert config is not None and suite is not None
        if self._context is None:
            public_key = HpkePublicKey.from_bytes(_X25519, config.public_key)
            self._enc, self._context = setup_base_sender(
                public_key, _info(config), Suite(_X25519, *suite)
            )
            enc = self._enc
        else:
            enc = b""  # §6.1.5: the second ClientHelloOuter after HRR sends no enc
        encoded = _hello_body(replace(inner, legacy_session_id=b"")) + self._padding(inner)
        placeholder = OuterECH(suite[0], suite[1], config.config_id, enc, bytes(len(encoded) + 16))
        items = []
        for e in inner.extensions:
            if e.type == ET.server_name:
                items.append(Extension(ET.server_name, ext.encode_server_name(config.public_name)))
            elif e.type == ET.encrypted_client_hello:
                items.append(Extension(ET.encrypted_client_hello, placeholder.encode()))
            elif e.type not in _INNER_ONLY:
                items.append(e)
        random = self.outer_random or random_bytes(32)  # RFC 8446 §4.1.2: kept after HRR
        outer = ClientHello(random, inner.legacy_session_id, inner.cipher_suites, tuple(items))
        payload = self._context.seal(_hello_body(outer), encoded)  # §5.2: AAD = outer, zeroed
        sealed = Extension(
            ET.encrypted_client_hello, replace(placeholder, payload=payload).encode()
        )
        outer = replace(
            outer,
            extensions=tuple(sealed if e.type == ET.encrypted_client_hello else e for e in items),
        )
        self.outer_raw = encode_message(outer)
        self.outer_random = outer.random
        self._sealed = sealed
        self.inner_raw = encode_message(inner)
        self.outer_extensions = {e.type for e in items}
        return outer

    def _padding(self, inner: ClientHello) -> bytes:
        """§6.1.3: hide the name's length, then round to a multiple of 32."""
        assert self.config is not None
        limit = self.config.maximum_name_length
        sni = inner.extension(ET.server_name)
        name = ext.decode_server_name(sni) if sni is not None else None
        pad = max(0, limit - len(name)) if name is not None else limit + 9
        total = len(_hello_body(inner)) - len(inner.legacy_session_id) + pad
        return bytes(pad + 31 - ((total - 1) % 32))

    def check_server_hello(
        self, hello_raw: bytes, transcript: Transcript, inner_random: bytes, hash_name: str
    ) -> bool:
        """§6.1.4: the last 8 bytes of ServerHello.random confirm ECH over the inner transcript."""
        zeroed = hello_raw[:30] + bytes(8) + hello_raw[38:]
        transcript.set_hash(hash_name)
        expected = _confirmation(
            hash_name, inner_random, transcript.digest_with(zeroed), _ACCEPT_LABEL
        )
        self.accepted = constant_time_eq(expected, hello_raw[30:38])
        return self.accepted

    def check_hello_retry(self, hrr: ServerHello, hash_name: str, inner_random: bytes) -> bool:
        """§6.1.5: a HelloRetryRequest's encrypted_client_hello confirms ECH over the inner
        transcript (message_hash of ClientHelloInner1, then the HRR with it zeroed)."""
        data = hrr.extension(ET.encrypted_client_hello)
        if data is None:
            self.accepted = False
            return False
        if len(data) != 8:
            raise DecodeError("the HelloRetryRequest's ECH confirmation is not 8 bytes")
        zeroed = replace(
            hrr,
            extensions=tuple(
                Extension(e.type, bytes(8)) if e.type == ET.encrypted_client_hello else e
                for e in hrr.extensions
            ),
        )
        probe = Transcript()
        probe.add(self.inner_raw)
        probe.restart_for_hello_retry(hash_name)
        digest = probe.digest_with(encode_message(zeroed))
        expected = _confirmation(hash_name, inner_random, digest, _HRR_ACCEPT_LABEL)
        self.accepted = constant_time_eq(expected, data)
        return self.accepted

    def on_encrypted_extensions(self, data: bytes) -> None:
        """§6.1.6: retry_configs are for a rejected offer; after acceptance, illegal."""
        if self.accepted:
            raise ProtocolViolation(
                "retry_configs after ECH was accepted", AlertDescription.unsupported_extension
            )
        configs = decode_retry_configs(data)
        if not self.grease:  # §6.2: a GREASE client ignores them
            self.retry_configs = configs

    def rejection(self) -> ECHRejected:
        """The error to end with after the server declined ECH, carrying its retry_configs."""
        return ECHRejected(self.retry_configs)


# Server -------------------------------------------------------------------------------


@dataclass
class ServerECH:
    """What the server keeps of an ECH offer: accepted (with the HPKE context for a
    second ClientHello after HRR) or to be answered with retry_configs."""

    accepted: bool
    context: ReceiverContext | None = field(default=None, repr=False)
    key: ECHKey | None = field(default=None, repr=False)
    suite: tuple[int, int] = (0, 0)


def server_open(
    hello: ClientHello, raw: bytes, keys: Sequence[ECHKey], state: ServerECH | None = None
) -> tuple[ClientHello, bytes, ServerECH | None]:
    """§7.1: try to decrypt the ClientHelloInner; on success return it (and its encoding)
    to continue with, else the outer hello and a rejected state (answer retry_configs).
    ``state`` is the first hello's outcome when this is the second one after HRR."""
    data = hello.extension(ET.encrypted_client_hello)
    if data is None:
        if state is not None and state.accepted:
            raise ProtocolViolation(  # §7.1.1: ECH must continue after HRR
                "second ClientHello dropped ECH", AlertDescription.missing_extension
            )
        return hello, raw, state
    outer = decode_ech_client_hello(data)
    if outer is None:  # §7.1: an inner marker in an outer hello
        raise ProtocolViolation(
            "inner ECH extension in the outer ClientHello", AlertDescription.illegal_parameter
        )
    if state is not None and not state.accepted:
        return hello, raw, state
    aad_hello = replace(
        hello,
        extensions=tuple(
            Extension(e.type, replace(outer, payload=bytes(len(outer.payload))).encode())
            if e.type == ET.encrypted_client_hello
            else e
            for e in hello.extensions
        ),
    )
    aad = _hello_body(aad_hello)
    if state is not None:  # §7.1.1: same context, same config and suite, no enc
        assert state.context is not None and state.key is not None
        if (
            outer.enc
            or outer.config_id != state.key.config.config_id
            or (outer.kdf_id, outer.aead_id) != state.suite
        ):
            raise ProtocolViolation(
                "second ClientHelloOuter changed its ECH offer", AlertDescription.illegal_parameter
            )
        try:
            encoded = state.context.open(aad, outer.payload)
        except CryptoError:
            raise ProtocolViolation(
                "second ClientHelloInner does not decrypt", AlertDescription.decrypt_error
            ) from None
        inner = _decode_inner(encoded, hello)
        return inner, encode_message(inner), state
    for key in keys:
        if (
            key.config.config_id != outer.config_id
            or (outer.kdf_id, outer.aead_id) not in key.config.cipher_suites
        ):
            continue
        try:
            suite = Suite(_X25519, KdfId(outer.kdf_id), AeadId(outer.aead_id))
            context = setup_base_receiver(outer.enc, key.private_key, _info(key.config), suite)
            encoded = context.open(aad, outer.payload)
        except (CryptoError, ValueError):
            continue
        inner = _decode_inner(encoded, hello)
        return (
            inner,
            encode_message(inner),
            ServerECH(True, context, key, (outer.kdf_id, outer.aead_id)),
        )
    return hello, raw, ServerECH(False)


def _decode_inner(encoded: bytes, outer: ClientHello) -> ClientHello:
    """EncodedClientHelloInner (§5.1): the hello, zero padding; expand ech_outer_extensions."""
    r = Reader(encoded)
    r.read(34)
    r.vector(1)
    r.vector(2)
    r.vector(1)
    r.vector(2)
    length = len(encoded) - r.remaining
    if any(encoded[length:]):
        raise ProtocolViolation("non-zero ECH padding", AlertDescription.illegal_parameter)
    message = decode_message(
        bytes((HandshakeType.client_hello,)) + length.to_bytes(3, "big") + encoded[:length]
    )
    if not isinstance(message, ClientHello) or message.legacy_session_id:
        raise ProtocolViolation(
            "malformed EncodedClientHelloInner", AlertDescription.illegal_parameter
        )
    items: list[Extension] = []
    for e in message.extensions:
        if e.type != ET.ech_outer_extensions:
            items.append(e)
            continue
        wanted = Reader(e.data).uint16_list(1, min_length=2)
        found = iter(outer.extensions)
        for t in wanted:  # §5.1: in the outer hello's order; never ECH itself
            match = next((o for o in found if o.type == t), None)
            if match is None or t == ET.encrypted_client_hello:
                raise ProtocolViolation(
                    "bad ech_outer_extensions", AlertDescription.illegal_parameter
                )
            items.append(match)
    inner = replace(message, legacy_session_id=outer.legacy_session_id, extensions=tuple(items))
    if len({e.type for e in items}) != len(items):
        raise ProtocolViolation(
            "duplicate extension in ClientHelloInner", AlertDescription.illegal_parameter
        )
    if inner.extension(ET.encrypted_client_hello) != bytes((_INNER,)):
        raise ProtocolViolation(
            "ClientHelloInner lacks the inner ECH extension", AlertDescription.illegal_parameter
        )
    return inner


def confirm_server_hello(
    hello: ServerHello, transcript: Transcript, inner_random: bytes, hash_name: str
) -> ServerHello:
    """§7.2: put the acceptance confirmation in the last 8 bytes of ServerHello.random."""
    draft = replace(hello, random=hello.random[:24] + bytes(8))
    digest = transcript.digest_with(encode_message(draft))
    return replace(
        draft,
        random=draft.random[:24] + _confirmation(hash_name, inner_random, digest, _ACCEPT_LABEL),
    )


def confirm_hello_retry(
    hrr: ServerHello, transcript: Transcript, inner_random: bytes, hash_name: str
) -> ServerHello:
    """§7.2.1: the HRR carries an encrypted_client_hello of 8 confirmation bytes, computed
    with them zeroed; ``transcript`` already holds message_hash(ClientHelloInner1)."""
    draft = replace(
        hrr, extensions=(*hrr.extensions, Extension(ET.encrypted_client_hello, bytes(8)))
    )
    digest = transcript.digest_with(encode_message(draft))
    confirmation = _confirmation(hash_name, inner_random, digest, _HRR_ACCEPT_LABEL)
    return replace(
        draft, extensions=(*hrr.extensions, Extension(ET.encrypted_client_hello, confirmation))
    )


def encode_retry_configs(keys: Sequence[ECHKey]) -> bytes:
    """The retry_configs a server sends: the ECHConfigList of its keys (draft-ietf-tls-esni §7)."""
    return encode_ech_config_list([k.config for k in keys])
