"""Blind indexes (docs/security.md, "Blind indexes"), computed offline by teams that hold the key.

``blind_index(key, keyring, version, field, normalize(format, value))`` gives the same
``fx1.<keyring>.<version>.<base64url>`` text as Fieldseal's EncryptFields and ComputeIndex. The shared test
vectors in ``test/vectors/indexes.json`` are the contract, with the TypeScript and Go code.

``normalize`` rewrites a value into its normal form only: unlike the server, it does not check that a card
number passes Luhn or that an address is well formed. Give it values the server would accept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata

__all__ = ["INDEX_BYTES", "blind_index", "index_key", "normalize"]

#: Bytes of HMAC-SHA256 kept in an index.
INDEX_BYTES = 16

_INFO_LABEL = b"fieldseal index v1"
_KEYRING_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

# JavaScript's String.prototype.trim set (WhiteSpace and LineTerminator), which the server uses. Python's
# str.strip() differs (it keeps U+FEFF and strips U+001C-U+001F), so the set is spelled out.
_JS_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_NATIONAL_ID_SEPARATORS = re.compile("[" + re.escape(_JS_SPACE) + r"\-./]")
_PHONE_SEPARATORS = re.compile(r"[ ().\-/]")
_ASCII_DOWNCASE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPCASE = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def index_key(key: bytes, keyring: str, field: str) -> bytes:
    """HKDF-SHA256 (RFC 5869): no salt, info ``fieldseal index v1`` NUL keyring NUL field, 32 bytes."""
    if len(key) != 32:
        raise ValueError("key must be 32 bytes")
    # The server's rules (src/engine/names.ts): a keyring name has no "." (the index text's separator) and
    # no NUL, a field name no NUL (the info's separator) and at most 256 bytes of UTF-8.
    if not _KEYRING_NAME.fullmatch(keyring):
        raise ValueError(
            "keyring name must be 1-63 characters a-z, 0-9, _ or -, starting with a letter or digit"
        )
    if "\0" in field or not field or len(field.encode("utf-8")) > 256:
        raise ValueError("field name must be 1 to 256 bytes of UTF-8 without NUL")
    info = _INFO_LABEL + b"\0" + keyring.encode("utf-8") + b"\0" + field.encode("utf-8")
    prk = hmac.new(b"\0" * 32, key, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def blind_index(key: bytes, keyring: str, version: int, field: str, normalized: str) -> str:
    """The index text of an already normalised value under one key version of a keyring."""
    mac = hmac.new(index_key(key, keyring, field), normalized.encode("utf-8"), hashlib.sha256).digest()
    text = base64.urlsafe_b64encode(mac[:INDEX_BYTES]).rstrip(b"=").decode("ascii")
    return f"fx1.{keyring}.{version}.{text}"


def normalize(format: str | None, value: str) -> str:
    """The normal form of ``value`` for a field of ``format`` (None: a field without one, as ``generic``)."""
    if format == "card":
        return re.sub(r"[ -]", "", value.strip(_JS_SPACE))
    if format == "phone":
        compact = _PHONE_SEPARATORS.sub("", value.strip(_JS_SPACE))
        return compact[1:] if compact.startswith("+") else compact
    if format == "national_id":
        compact = _NATIONAL_ID_SEPARATORS.sub("", unicodedata.normalize("NFKC", value))
        return compact.translate(_ASCII_UPCASE)
    if format == "email":
        return value.strip(_JS_SPACE).translate(_ASCII_DOWNCASE)
    if format in (None, "generic"):
        return unicodedata.normalize("NFC", value).strip(_JS_SPACE)
    raise ValueError(f"unknown format {format!r}")
