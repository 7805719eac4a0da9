"""Offline opener for Fieldseal's ``fs1`` envelope (docs/envelope.md), for teams that hold the key.

No network, no files: give it the sealed text, a way to find the key, and the scope and field the value
was sealed for (``open_scoped_value`` for scope-keyed ``fs1s`` values, with the scope's data key). The
test vectors in ``test/vectors/envelopes.json`` and ``test/vectors/scoped.json`` are the contract this
module is checked against, together with the TypeScript and Go openers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import (
    EnvelopeMalformed,
    EnvelopeTampered,
    InvalidArgument,
    KeyringNotFound,
    KeyVersionNotFound,
    ScopeKeyNotFound,
    TooLarge,
)

__all__ = [
    "DataKeyLookup",
    "Envelope",
    "JsonValue",
    "KeyLookup",
    "ScopedEnvelope",
    "LegacyBlob",
    "StaticKeys",
    "build_aad",
    "build_scoped_aad",
    "derive_value_key",
    "open_legacy_blob",
    "open_scoped_value",
    "open_value",
    "parse_envelope",
    "parse_legacy_blob",
    "parse_scoped_envelope",
    "unwrap_data_key",
    "session_scope",
    "user_scope",
]

JsonValue = Union[str, int, float, bool, None, list[Any], dict[str, Any]]

KeyLookup = Callable[[str, int], Optional[bytes]]
"""Returns the 32-byte key of ``(keyring, version)``; raises KeyringNotFound or KeyVersionNotFound
(returning None counts as KeyVersionNotFound)."""

DataKeyLookup = Callable[[str, str, int], Optional[bytes]]
"""Returns the 32-byte data key of ``(keyring, scope, generation)`` for scope-keyed values, or None when
there is none (forgotten, or never given): ScopeKeyNotFound."""

FORMAT_TAG = "fs1"
SCOPED_FORMAT_TAG = "fs1s"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
MAX_VERSION = 0xFFFF_FFFF
# Longest envelope text Fieldseal accepts, checked before any decoding work (largest plaintext + headroom).
MAX_ENVELOPE_CHARS = 90_000
MAX_NAME_BYTES = 256

# fullmatch everywhere: Python's `$` also matches before a trailing newline.
_KEYRING_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_VERSION_TEXT = re.compile(r"[1-9][0-9]{0,9}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")

_TYPE_STRING = 0x73  # "s": the rest is the string's UTF-8
_TYPE_JSON = 0x6A  # "j": the rest is UTF-8 JSON text


def session_scope(session_id: str) -> str:
    """The scope of a value bound to a Cognigy.AI session: ``session:<id>``."""
    return f"session:{session_id}"


def user_scope(user_id: str) -> str:
    """The scope of a value bound to a user or profile: ``user:<id>``."""
    return f"user:{user_id}"


@dataclass(frozen=True)
class Envelope:
    """A parsed ``fs1`` envelope: which key opens it, and its raw parts."""

    keyring: str
    version: int
    nonce: bytes
    sealed: bytes
    """Ciphertext followed by the 16-byte tag."""


class StaticKeys:
    """A KeyLookup over keys held in memory: ``{keyring: {version: key_bytes}}``."""

    def __init__(self, keys: Mapping[str, Mapping[int, bytes]]) -> None:
        self._keys = {name: dict(versions) for name, versions in keys.items()}

    @classmethod
    def from_base64(cls, keys: Mapping[str, Mapping[Any, str]]) -> StaticKeys:
        """Builds the lookup from standard base64 keys, as in the test vectors' ``keys``."""
        return cls(
            {
                name: {int(version): base64.b64decode(material, validate=True) for version, material in versions.items()}
                for name, versions in keys.items()
            }
        )

    def __call__(self, keyring: str, version: int) -> bytes:
        versions = self._keys.get(keyring)
        if versions is None:
            raise KeyringNotFound(f"no key is known for keyring {keyring!r}")
        key = versions.get(version)
        if key is None:
            raise KeyVersionNotFound(f"keyring {keyring!r} has no key version {version}")
        return key


def parse_envelope(text: str) -> Envelope:
    """Parses envelope text strictly; anything but the canonical form raises EnvelopeMalformed."""
    if len(text) > MAX_ENVELOPE_CHARS:
        raise TooLarge(f"sealed value is longer than {MAX_ENVELOPE_CHARS} characters")
    parts = text.split(".")
    if len(parts) != 4 or parts[0] != FORMAT_TAG:
        raise _malformed("expected four dot-separated parts starting with 'fs1'")
    _, keyring, version_text, payload_text = parts
    if not _KEYRING_NAME.fullmatch(keyring):
        raise _malformed("keyring name is not valid")
    if not _VERSION_TEXT.fullmatch(version_text) or int(version_text) > MAX_VERSION:
        raise _malformed("key version is not a positive integer")
    if not _BASE64URL.fullmatch(payload_text):
        raise _malformed("payload is not base64url")
    payload = _decode_base64url(payload_text)
    if len(payload) < NONCE_BYTES + 1 + TAG_BYTES:
        raise _malformed("payload is too short")
    return Envelope(keyring, int(version_text), payload[:NONCE_BYTES], payload[NONCE_BYTES:])


def build_aad(keyring: str, version: int, scope: str, field: str) -> bytes:
    """The associated data: ``"fs1" NUL keyring NUL version NUL scope NUL field``, as UTF-8.

    No part may contain NUL: that is what keeps two different contexts from producing the same bytes.
    """
    if not _KEYRING_NAME.fullmatch(keyring):
        raise InvalidArgument("keyring name is not valid")
    kind, sep, scope_id = scope.partition(":")
    if not sep or kind not in ("session", "user"):
        raise InvalidArgument("scope must be 'session:<sessionId>' or 'user:<userId>'")
    _check_aad_part(f"{kind} id", scope_id)
    _check_aad_part("field name", field)
    return "\0".join([FORMAT_TAG, keyring, str(version), scope, field]).encode("utf-8")


def open_value(text: str, key_lookup: KeyLookup, scope: str, field: str) -> JsonValue:
    """Opens an ``fs1`` envelope sealed for ``scope`` and ``field``; returns the value as its JSON type.

    ``key_lookup(keyring, version)`` returns the 32-byte key (a StaticKeys works). ``scope`` is
    ``session:<sessionId>`` or ``user:<userId>`` (see session_scope and user_scope).

    Raises EnvelopeMalformed, EnvelopeTampered (altered, or moved to another field, scope or version),
    KeyringNotFound, KeyVersionNotFound, InvalidArgument or TooLarge; all are FieldsealError.
    """
    envelope = parse_envelope(text)
    key = key_lookup(envelope.keyring, envelope.version)
    if key is None:
        raise KeyVersionNotFound(f"keyring {envelope.keyring!r} has no key version {envelope.version}")
    aad = build_aad(envelope.keyring, envelope.version, scope, field)
    plaintext = _aes_gcm_open(key, envelope.nonce, envelope.sealed, aad)
    return _decode_value(plaintext)


@dataclass(frozen=True)
class ScopedEnvelope:
    """A parsed ``fs1s`` (scope-keyed) envelope."""

    keyring: str
    version: int
    generation: int
    nonce: bytes
    sealed: bytes


def parse_scoped_envelope(text: str) -> ScopedEnvelope:
    """Parses ``fs1s.<keyring>.<version>.<generation>.<payload>`` strictly; else EnvelopeMalformed."""
    if len(text) > MAX_ENVELOPE_CHARS:
        raise TooLarge(f"sealed value is longer than {MAX_ENVELOPE_CHARS} characters")
    parts = text.split(".")
    if len(parts) != 5 or parts[0] != SCOPED_FORMAT_TAG:
        raise EnvelopeMalformed("sealed value is not a valid fs1s envelope: expected five dot-separated parts starting with 'fs1s'")
    _, keyring, version_text, generation_text, payload_text = parts
    if not _KEYRING_NAME.fullmatch(keyring):
        raise EnvelopeMalformed("sealed value is not a valid fs1s envelope: keyring name is not valid")
    for what, number in (("key version", version_text), ("generation", generation_text)):
        if not _VERSION_TEXT.fullmatch(number) or int(number) > MAX_VERSION:
            raise EnvelopeMalformed(f"sealed value is not a valid fs1s envelope: {what} is not a positive integer")
    if not _BASE64URL.fullmatch(payload_text):
        raise EnvelopeMalformed("sealed value is not a valid fs1s envelope: payload is not base64url")
    payload = _decode_base64url(payload_text)
    if len(payload) < NONCE_BYTES + 1 + TAG_BYTES:
        raise EnvelopeMalformed("sealed value is not a valid fs1s envelope: payload is too short")
    return ScopedEnvelope(keyring, int(version_text), int(generation_text), payload[:NONCE_BYTES], payload[NONCE_BYTES:])


def build_scoped_aad(keyring: str, version: int, generation: int, scope: str, field: str) -> bytes:
    """``"fs1s" NUL keyring NUL version NUL generation NUL scope NUL field``, as UTF-8."""
    build_aad(keyring, version, scope, field)  # the same checks of every part
    return "\0".join([SCOPED_FORMAT_TAG, keyring, str(version), str(generation), scope, field]).encode("utf-8")


def derive_value_key(data_key: bytes, version_key: bytes) -> bytes:
    """The key a scope-keyed value is sealed under: HMAC-SHA256(data key, ``"fs1s" NUL`` || version key)."""
    if len(data_key) != KEY_BYTES or len(version_key) != KEY_BYTES:
        raise InvalidArgument("data key and key version must be 32 bytes each")
    return hmac.new(bytes(data_key), b"fs1s\0" + bytes(version_key), hashlib.sha256).digest()


def unwrap_data_key(version_key: bytes, keyring: str, version: int, scope: str, generation: int, wrapped: bytes) -> bytes:
    """Unwraps a data key as the scope key database holds it: ``nonce || AES-256-GCM(data key) || tag``
    under keyring version ``version``, AAD ``"fs1s-key" NUL keyring NUL version NUL scope NUL generation``."""
    if len(wrapped) != NONCE_BYTES + KEY_BYTES + TAG_BYTES:
        raise InvalidArgument("a wrapped data key is 60 bytes")
    aad = "\0".join(["fs1s-key", keyring, str(version), scope, str(generation)]).encode("utf-8")
    return _aes_gcm_open(version_key, wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)


def open_scoped_value(text: str, key_lookup: KeyLookup, data_key_lookup: DataKeyLookup, scope: str, field: str) -> JsonValue:
    """Opens an ``fs1s`` (scope-keyed) envelope sealed for ``scope`` and ``field``.

    Needs both the keyring version's key (``key_lookup``) and the scope's data key of the envelope's
    generation (``data_key_lookup(keyring, scope, generation)``); a forgotten scope has no data key, so
    none of its values open anywhere. Raises what open_value raises, and ScopeKeyNotFound.
    """
    envelope = parse_scoped_envelope(text)
    key = key_lookup(envelope.keyring, envelope.version)
    if key is None:
        raise KeyVersionNotFound(f"keyring {envelope.keyring!r} has no key version {envelope.version}")
    aad = build_scoped_aad(envelope.keyring, envelope.version, envelope.generation, scope, field)
    data_key = data_key_lookup(envelope.keyring, scope, envelope.generation)
    if data_key is None:
        raise ScopeKeyNotFound(f"no data key of generation {envelope.generation} for this scope in keyring {envelope.keyring!r}")
    plaintext = _aes_gcm_open(derive_value_key(data_key, key), envelope.nonce, envelope.sealed, aad)
    return _decode_value(plaintext)


@dataclass(frozen=True)
class LegacyBlob:
    """A blob in the tutorial's format: base64 of JSON ``{nonce, ciphertext, key_version, ...}``."""

    key_version_label: str
    original_field: str
    nonce: bytes
    sealed: bytes


def parse_legacy_blob(text: str) -> LegacyBlob:
    """Parses a tutorial blob; raises EnvelopeMalformed for anything else."""
    if not _BASE64.fullmatch(text):
        raise _legacy_malformed()
    try:
        blob = json.loads(base64.b64decode(text, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _legacy_malformed() from None
    if not isinstance(blob, dict):
        raise _legacy_malformed()
    nonce, ciphertext = blob.get("nonce"), blob.get("ciphertext")
    label, original_field = blob.get("key_version"), blob.get("original_field")
    if not isinstance(nonce, str) or not isinstance(ciphertext, str) or not isinstance(original_field, str):
        raise _legacy_malformed()
    if isinstance(label, bool) or not isinstance(label, (str, int, float)):
        raise _legacy_malformed()
    if not _BASE64.fullmatch(nonce) or not _BASE64.fullmatch(ciphertext):
        raise _legacy_malformed()
    try:
        nonce_bytes = base64.b64decode(nonce, validate=True)
        sealed = base64.b64decode(ciphertext, validate=True)
    except binascii.Error:
        raise _legacy_malformed() from None
    if len(nonce_bytes) != NONCE_BYTES or len(sealed) < TAG_BYTES:
        raise _legacy_malformed()
    return LegacyBlob(str(label), original_field, nonce_bytes, sealed)


def open_legacy_blob(text: str, key: bytes, field: str) -> str:
    """Opens a tutorial blob for ``field`` with the raw 32-byte key of the secret version it names.

    The tutorial bound nothing into the ciphertext, so the field it names is checked here; nothing can
    tell a blob copied to another session. Rewrap such values into ``fs1`` (the RewrapFields RPC).
    """
    blob = parse_legacy_blob(text)
    if blob.original_field != field:
        raise EnvelopeTampered("legacy sealed value belongs to another field")
    plaintext = _aes_gcm_open(key, blob.nonce, blob.sealed, None)
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeMalformed("legacy sealed value does not hold UTF-8 text") from None


def _aes_gcm_open(key: bytes, nonce: bytes, sealed: bytes, aad: bytes | None) -> bytes:
    # AESGCM also takes 16- and 24-byte keys; anything but 32 bytes is a wrong key, never one to accept.
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise InvalidArgument("key must be 32 bytes (AES-256)")
    try:
        return AESGCM(bytes(key)).decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise EnvelopeTampered(
            "sealed value does not authenticate: it was altered, or belongs to another field, scope or key version"
        ) from None


def _decode_value(plaintext: bytes) -> JsonValue:
    kind = plaintext[0] if plaintext else None
    try:
        text = plaintext[1:].decode("utf-8")
        if kind == _TYPE_STRING:
            return text
        if kind == _TYPE_JSON:
            # JSON as Fieldseal writes it: no NaN or Infinity, which Python's json would otherwise accept.
            value: JsonValue = json.loads(text, parse_constant=_reject_constant)
            return value
    except ValueError:
        pass  # only reachable with a key that authenticated a value Fieldseal did not write
    raise EnvelopeMalformed("sealed value holds plaintext of an unknown type")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _decode_base64url(text: str) -> bytes:
    if len(text) % 4 == 1:
        raise _malformed("payload is not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # Decoders ignore stray trailing bits; re-encoding rejects every non-canonical spelling, so any change
    # to the text is a change to the bytes (and fails authentication) or fails here.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise _malformed("payload is not canonical base64url")
    return raw


def _check_aad_part(what: str, text: str) -> None:
    if not isinstance(text, str) or text == "":
        raise InvalidArgument(f"{what} is empty")
    if "\0" in text:
        raise InvalidArgument(f"{what} contains a NUL character")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} is not valid UTF-8") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise InvalidArgument(f"{what} is longer than {MAX_NAME_BYTES} bytes")


def _malformed(why: str) -> EnvelopeMalformed:
    return EnvelopeMalformed(f"sealed value is not a valid fs1 envelope: {why}")


def _legacy_malformed() -> EnvelopeMalformed:
    return EnvelopeMalformed("sealed value is neither an fs1 envelope nor a legacy tutorial blob")
