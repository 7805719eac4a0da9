"""Open Fieldseal sealed values from Python.

- ``open_value``: the offline opener for ``fs1`` envelopes, for teams that hold the key themselves.
- ``blind_index``: blind indexes (``fx1.``) computed offline, equal to the server's.
- ``FieldsealClient``: the gRPC client (DecryptField, DecryptFields, EncryptFields) with a bearer token
  or mTLS.
"""

from .blind_index import blind_index, index_key
from .client import DecryptResult, EncryptResult, FieldsealClient, MaskedValue
from .envelope import (
    KeyLookup,
    StaticKeys,
    open_legacy_blob,
    open_scoped_value,
    open_value,
    parse_envelope,
    parse_legacy_blob,
    session_scope,
    user_scope,
)
from .errors import (
    EnvelopeMalformed,
    EnvelopeTampered,
    FieldsealError,
    InvalidArgument,
    KeyringNotFound,
    KeyVersionNotFound,
    KeyVersionRetired,
    PermissionDenied,
    ScopeForgotten,
    ScopeKeyNotFound,
    StoreUnavailable,
    TooLarge,
    Unauthenticated,
)

__all__ = [
    "DecryptResult",
    "EncryptResult",
    "EnvelopeMalformed",
    "EnvelopeTampered",
    "FieldsealClient",
    "FieldsealError",
    "InvalidArgument",
    "KeyLookup",
    "KeyVersionNotFound",
    "KeyVersionRetired",
    "KeyringNotFound",
    "MaskedValue",
    "PermissionDenied",
    "ScopeForgotten",
    "ScopeKeyNotFound",
    "StaticKeys",
    "StoreUnavailable",
    "TooLarge",
    "Unauthenticated",
    "blind_index",
    "index_key",
    "open_legacy_blob",
    "open_scoped_value",
    "open_value",
    "parse_envelope",
    "parse_legacy_blob",
    "session_scope",
    "user_scope",
]
