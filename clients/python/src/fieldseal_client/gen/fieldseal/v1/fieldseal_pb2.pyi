import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyVersionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_VERSION_STATE_UNSPECIFIED: _ClassVar[KeyVersionState]
    KEY_VERSION_STATE_PRIMARY: _ClassVar[KeyVersionState]
    KEY_VERSION_STATE_DECRYPT_ONLY: _ClassVar[KeyVersionState]
    KEY_VERSION_STATE_RETIRED: _ClassVar[KeyVersionState]
    KEY_VERSION_STATE_DESTROYED: _ClassVar[KeyVersionState]

class PushMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUSH_MODE_UNSPECIFIED: _ClassVar[PushMode]
    PUSH_MODE_CONTEXT_INJECT: _ClassVar[PushMode]
    PUSH_MODE_VARIABLES_PUT: _ClassVar[PushMode]
KEY_VERSION_STATE_UNSPECIFIED: KeyVersionState
KEY_VERSION_STATE_PRIMARY: KeyVersionState
KEY_VERSION_STATE_DECRYPT_ONLY: KeyVersionState
KEY_VERSION_STATE_RETIRED: KeyVersionState
KEY_VERSION_STATE_DESTROYED: KeyVersionState
PUSH_MODE_UNSPECIFIED: PushMode
PUSH_MODE_CONTEXT_INJECT: PushMode
PUSH_MODE_VARIABLES_PUT: PushMode

class Scope(_message.Message):
    __slots__ = ("session_id", "user_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class EncryptFieldsRequest(_message.Message):
    __slots__ = ("keyring", "scope", "fields", "index_fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    KEYRING_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELDS_FIELD_NUMBER: _ClassVar[int]
    keyring: str
    scope: Scope
    fields: _containers.MessageMap[str, _struct_pb2.Value]
    index_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, keyring: _Optional[str] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ..., fields: _Optional[_Mapping[str, _struct_pb2.Value]] = ..., index_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class EncryptFieldsResponse(_message.Message):
    __slots__ = ("sealed", "keyring", "key_version", "masked", "indexes")
    class SealedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MaskedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MaskedValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MaskedValue, _Mapping]] = ...) -> None: ...
    class IndexesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SEALED_FIELD_NUMBER: _ClassVar[int]
    KEYRING_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    sealed: _containers.ScalarMap[str, str]
    keyring: str
    key_version: int
    masked: _containers.MessageMap[str, MaskedValue]
    indexes: _containers.ScalarMap[str, str]
    def __init__(self, sealed: _Optional[_Mapping[str, str]] = ..., keyring: _Optional[str] = ..., key_version: _Optional[int] = ..., masked: _Optional[_Mapping[str, MaskedValue]] = ..., indexes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class MaskedValue(_message.Message):
    __slots__ = ("format", "text", "speakable")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPEAKABLE_FIELD_NUMBER: _ClassVar[int]
    format: str
    text: str
    speakable: str
    def __init__(self, format: _Optional[str] = ..., text: _Optional[str] = ..., speakable: _Optional[str] = ...) -> None: ...

class DecryptFieldRequest(_message.Message):
    __slots__ = ("scope", "field", "sealed")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    scope: Scope
    field: str
    sealed: str
    def __init__(self, scope: _Optional[_Union[Scope, _Mapping]] = ..., field: _Optional[str] = ..., sealed: _Optional[str] = ...) -> None: ...

class DecryptFieldResponse(_message.Message):
    __slots__ = ("value", "keyring", "key_version", "legacy")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    KEYRING_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    LEGACY_FIELD_NUMBER: _ClassVar[int]
    value: _struct_pb2.Value
    keyring: str
    key_version: int
    legacy: bool
    def __init__(self, value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., keyring: _Optional[str] = ..., key_version: _Optional[int] = ..., legacy: _Optional[bool] = ...) -> None: ...

class SealedField(_message.Message):
    __slots__ = ("field", "sealed")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    field: str
    sealed: str
    def __init__(self, field: _Optional[str] = ..., sealed: _Optional[str] = ...) -> None: ...

class FieldError(_message.Message):
    __slots__ = ("code", "message", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    reason: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DecryptFieldsRequest(_message.Message):
    __slots__ = ("scope", "items")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    scope: Scope
    items: _containers.RepeatedCompositeFieldContainer[SealedField]
    def __init__(self, scope: _Optional[_Union[Scope, _Mapping]] = ..., items: _Optional[_Iterable[_Union[SealedField, _Mapping]]] = ...) -> None: ...

class DecryptFieldResult(_message.Message):
    __slots__ = ("field", "value", "error", "key_version")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    field: str
    value: _struct_pb2.Value
    error: FieldError
    key_version: int
    def __init__(self, field: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., error: _Optional[_Union[FieldError, _Mapping]] = ..., key_version: _Optional[int] = ...) -> None: ...

class DecryptFieldsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DecryptFieldResult]
    def __init__(self, results: _Optional[_Iterable[_Union[DecryptFieldResult, _Mapping]]] = ...) -> None: ...

class RewrapFieldsRequest(_message.Message):
    __slots__ = ("scope", "items", "keyring")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    KEYRING_FIELD_NUMBER: _ClassVar[int]
    scope: Scope
    items: _containers.RepeatedCompositeFieldContainer[SealedField]
    keyring: str
    def __init__(self, scope: _Optional[_Union[Scope, _Mapping]] = ..., items: _Optional[_Iterable[_Union[SealedField, _Mapping]]] = ..., keyring: _Optional[str] = ...) -> None: ...

class RewrapFieldResult(_message.Message):
    __slots__ = ("field", "sealed", "error", "from_key_version", "to_key_version")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FROM_KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    TO_KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    field: str
    sealed: str
    error: FieldError
    from_key_version: int
    to_key_version: int
    def __init__(self, field: _Optional[str] = ..., sealed: _Optional[str] = ..., error: _Optional[_Union[FieldError, _Mapping]] = ..., from_key_version: _Optional[int] = ..., to_key_version: _Optional[int] = ...) -> None: ...

class RewrapFieldsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RewrapFieldResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RewrapFieldResult, _Mapping]]] = ...) -> None: ...

class KeyVersionInfo(_message.Message):
    __slots__ = ("version", "state", "created_at", "seals_reserved", "legacy_label", "destroyed_at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SEALS_RESERVED_FIELD_NUMBER: _ClassVar[int]
    LEGACY_LABEL_FIELD_NUMBER: _ClassVar[int]
    DESTROYED_AT_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: KeyVersionState
    created_at: _timestamp_pb2.Timestamp
    seals_reserved: int
    legacy_label: str
    destroyed_at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[int] = ..., state: _Optional[_Union[KeyVersionState, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seals_reserved: _Optional[int] = ..., legacy_label: _Optional[str] = ..., destroyed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class KeyInfo(_message.Message):
    __slots__ = ("name", "primary_version", "min_decrypt_version", "versions", "store", "rotate_by", "seal_budget", "erasable", "reuse_after_forget")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    MIN_DECRYPT_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    ROTATE_BY_FIELD_NUMBER: _ClassVar[int]
    SEAL_BUDGET_FIELD_NUMBER: _ClassVar[int]
    ERASABLE_FIELD_NUMBER: _ClassVar[int]
    REUSE_AFTER_FORGET_FIELD_NUMBER: _ClassVar[int]
    name: str
    primary_version: int
    min_decrypt_version: int
    versions: _containers.RepeatedCompositeFieldContainer[KeyVersionInfo]
    store: str
    rotate_by: _timestamp_pb2.Timestamp
    seal_budget: int
    erasable: bool
    reuse_after_forget: bool
    def __init__(self, name: _Optional[str] = ..., primary_version: _Optional[int] = ..., min_decrypt_version: _Optional[int] = ..., versions: _Optional[_Iterable[_Union[KeyVersionInfo, _Mapping]]] = ..., store: _Optional[str] = ..., rotate_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seal_budget: _Optional[int] = ..., erasable: _Optional[bool] = ..., reuse_after_forget: _Optional[bool] = ...) -> None: ...

class RotateKeyRequest(_message.Message):
    __slots__ = ("keyring", "expected_primary_version", "create")
    KEYRING_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_PRIMARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_FIELD_NUMBER: _ClassVar[int]
    keyring: str
    expected_primary_version: int
    create: bool
    def __init__(self, keyring: _Optional[str] = ..., expected_primary_version: _Optional[int] = ..., create: _Optional[bool] = ...) -> None: ...

class RotateKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ...) -> None: ...

class RetireKeyVersionsRequest(_message.Message):
    __slots__ = ("keyring", "min_decrypt_version")
    KEYRING_FIELD_NUMBER: _ClassVar[int]
    MIN_DECRYPT_VERSION_FIELD_NUMBER: _ClassVar[int]
    keyring: str
    min_decrypt_version: int
    def __init__(self, keyring: _Optional[str] = ..., min_decrypt_version: _Optional[int] = ...) -> None: ...

class RetireKeyVersionsResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ...) -> None: ...

class DestroyKeyVersionsRequest(_message.Message):
    __slots__ = ("keyring", "below_version", "retire")
    KEYRING_FIELD_NUMBER: _ClassVar[int]
    BELOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    RETIRE_FIELD_NUMBER: _ClassVar[int]
    keyring: str
    below_version: int
    retire: bool
    def __init__(self, keyring: _Optional[str] = ..., below_version: _Optional[int] = ..., retire: _Optional[bool] = ...) -> None: ...

class DestroyKeyVersionsResponse(_message.Message):
    __slots__ = ("key", "destroyed_versions")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DESTROYED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    destroyed_versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ..., destroyed_versions: _Optional[_Iterable[int]] = ...) -> None: ...

class DescribeKeyRequest(_message.Message):
    __slots__ = ("keyring",)
    KEYRING_FIELD_NUMBER: _ClassVar[int]
    keyring: str
    def __init__(self, keyring: _Optional[str] = ...) -> None: ...

class DescribeKeyResponse(_message.Message):
    __slots__ = ("key", "sealing_version")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SEALING_VERSION_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    sealing_version: int
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ..., sealing_version: _Optional[int] = ...) -> None: ...

class ForgetScopeRequest(_message.Message):
    __slots__ = ("keyring", "scope")
    KEYRING_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    keyring: str
    scope: Scope
    def __init__(self, keyring: _Optional[str] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ...) -> None: ...

class ForgetScopeResponse(_message.Message):
    __slots__ = ("generation", "forgotten_at")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    FORGOTTEN_AT_FIELD_NUMBER: _ClassVar[int]
    generation: int
    forgotten_at: _timestamp_pb2.Timestamp
    def __init__(self, generation: _Optional[int] = ..., forgotten_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListKeyringsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListKeyringsResponse(_message.Message):
    __slots__ = ("keyrings",)
    KEYRINGS_FIELD_NUMBER: _ClassVar[int]
    keyrings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, keyrings: _Optional[_Iterable[str]] = ...) -> None: ...

class PushSessionRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "context", "mode", "idempotency_key")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    context: _containers.MessageMap[str, _struct_pb2.Value]
    mode: PushMode
    idempotency_key: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., context: _Optional[_Mapping[str, _struct_pb2.Value]] = ..., mode: _Optional[_Union[PushMode, str]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class PushSessionResponse(_message.Message):
    __slots__ = ("attempts", "http_status", "deduplicated", "trace_id")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    http_status: int
    deduplicated: bool
    trace_id: str
    def __init__(self, attempts: _Optional[int] = ..., http_status: _Optional[int] = ..., deduplicated: _Optional[bool] = ..., trace_id: _Optional[str] = ...) -> None: ...

class ComputeIndexRequest(_message.Message):
    __slots__ = ("keyring", "field", "value", "all_versions")
    KEYRING_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ALL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    keyring: str
    field: str
    value: str
    all_versions: bool
    def __init__(self, keyring: _Optional[str] = ..., field: _Optional[str] = ..., value: _Optional[str] = ..., all_versions: _Optional[bool] = ...) -> None: ...

class ComputeIndexResponse(_message.Message):
    __slots__ = ("indexes", "keyring", "key_version")
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    KEYRING_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    indexes: _containers.RepeatedScalarFieldContainer[str]
    keyring: str
    key_version: int
    def __init__(self, indexes: _Optional[_Iterable[str]] = ..., keyring: _Optional[str] = ..., key_version: _Optional[int] = ...) -> None: ...
