"""Fieldseal's error vocabulary, as Python exceptions.

Every exception carries the same stable ``code`` string the Fieldseal service uses (``envelope_tampered``,
``key_version_not_found``...), whether it was raised by the offline opener or reported by the server.
Messages name sizes, versions and fields; they never contain a plaintext value or key material.
"""

from __future__ import annotations

from typing import Any


class FieldsealError(Exception):
    """Base class of every error this package raises on purpose.

    ``code`` is Fieldseal's stable error code. For errors the server reported, ``status`` is the
    ``grpc.StatusCode`` of the call and ``request_id`` the server's request id, when it sent one.
    """

    code: str = "internal"

    def __init__(self, message: str, *, code: str | None = None, status: Any = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.status = status
        self.request_id = request_id


class InvalidArgument(FieldsealError):
    """A scope, field name or key given to the opener is not valid."""

    code = "invalid_argument"


class EnvelopeMalformed(FieldsealError):
    """The sealed value is not a well-formed ``fs1`` envelope (or legacy blob)."""

    code = "envelope_malformed"


class EnvelopeTampered(FieldsealError):
    """The sealed value does not authenticate: altered, or moved to another field, scope or key version."""

    code = "envelope_tampered"


class KeyringNotFound(FieldsealError):
    """No key is known for the envelope's keyring."""

    code = "keyring_not_found"


class KeyVersionNotFound(FieldsealError):
    """The keyring is known but the envelope's key version is not."""

    code = "key_version_not_found"


class ScopeKeyNotFound(FieldsealError):
    """No data key was given for a scope-keyed value's keyring, scope and generation (offline opener)."""

    code = "scope_key_not_found"


class ScopeForgotten(FieldsealError):
    """The value's scope was forgotten (ForgetScope): it can never open again (server only)."""

    code = "scope_forgotten"


class TooLarge(FieldsealError):
    """The sealed value is longer than any value Fieldseal writes."""

    code = "too_large"


class KeyVersionRetired(FieldsealError):
    """The key version is below its keyring's minimum decryption version (server only)."""

    code = "key_version_retired"


class Unauthenticated(FieldsealError):
    """The server did not accept the credentials: no token, or an unknown one."""

    code = "unauthenticated"


class PermissionDenied(FieldsealError):
    """The caller is known but may not do this (for example, decrypt this field)."""

    code = "permission_denied"


class StoreUnavailable(FieldsealError):
    """The server cannot reach its key store and has nothing cached that serves the call."""

    code = "store_unavailable"


_BY_CODE: dict[str, type[FieldsealError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        EnvelopeMalformed,
        EnvelopeTampered,
        KeyringNotFound,
        KeyVersionNotFound,
        ScopeKeyNotFound,
        ScopeForgotten,
        TooLarge,
        KeyVersionRetired,
        Unauthenticated,
        PermissionDenied,
        StoreUnavailable,
    )
}


def error_for_code(code: str, message: str, **details: Any) -> FieldsealError:
    """The exception for a Fieldseal error code: the matching class, or FieldsealError with that code."""
    cls = _BY_CODE.get(code, FieldsealError)
    return cls(message, code=code, **details)
