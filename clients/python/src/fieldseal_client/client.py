"""gRPC client for the Fieldseal service: seal and open fields with a bearer token or a client certificate."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field as dataclass_field
from typing import Any, NamedTuple, Optional, Union

import grpc
from google.protobuf import struct_pb2

from .envelope import JsonValue
from .errors import FieldsealError, InvalidArgument, error_for_code
from .gen.fieldseal.v1 import fieldseal_pb2, fieldseal_pb2_grpc

__all__ = ["DecryptResult", "EncryptResult", "FieldsealClient", "MaskedValue", "from_value", "to_value"]

ScopeLike = Union[str, fieldseal_pb2.Scope]
"""``session:<sessionId>``, ``user:<userId>``, or a generated ``Scope`` message."""

REASON_METADATA = "fieldseal-reason"
REQUEST_ID_METADATA = "x-request-id"
# Integers beyond 2^53 do not survive a JSON number (a double) unchanged: refuse them instead of rounding.
_MAX_SAFE_INTEGER = 2**53 - 1
# JavaScript writes integral numbers below 1e21 without an exponent, and json.loads reads those as int.
_INTEGRAL_LIMIT = 1e21


@dataclass(frozen=True)
class MaskedValue:
    """What may be shown or said of a sealed field without opening it (docs/masks.md)."""

    format: str
    text: str
    speakable: str


@dataclass(frozen=True)
class EncryptResult:
    """What EncryptFields returned: the sealed text per field, the key that sealed them, the masks of
    fields that have a format, and the blind indexes asked for (``index_fields``)."""

    sealed: dict[str, str]
    keyring: str
    key_version: int
    masked: dict[str, MaskedValue] = dataclass_field(default_factory=dict)
    indexes: dict[str, str] = dataclass_field(default_factory=dict)


@dataclass(frozen=True)
class DecryptResult:
    """One item of DecryptFields: either ``value`` or ``error`` is meaningful; check ``ok``."""

    field: str
    value: JsonValue
    error: Optional[FieldsealError]
    key_version: int

    @property
    def ok(self) -> bool:
        return self.error is None


class FieldsealClient:
    """A connection to a Fieldseal server.

    Over TLS (the default), pass ``root_certificates`` to trust a private CA and ``private_key`` plus
    ``certificate_chain`` (PEM bytes) to authenticate with a client certificate (mTLS). ``token`` adds
    ``authorization: Bearer <token>`` to every call. ``insecure=True`` speaks cleartext HTTP/2, for a
    server on loopback or behind a sidecar; the token is then sent in the clear, so never use it across a
    network. Use as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        target: str,
        *,
        token: Optional[str] = None,
        insecure: bool = False,
        root_certificates: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
        certificate_chain: Optional[bytes] = None,
        timeout: Optional[float] = 30.0,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if insecure and (root_certificates or private_key or certificate_chain):
            raise ValueError("certificates were given for an insecure channel")
        if insecure:
            channel = grpc.insecure_channel(target, options=options)
            if token is not None:
                # grpc refuses call credentials on insecure channels, so the header is added by an interceptor.
                channel = grpc.intercept_channel(channel, _BearerToken(token))
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            if token is not None:
                credentials = grpc.composite_channel_credentials(
                    credentials, grpc.access_token_call_credentials(token)
                )
            channel = grpc.secure_channel(target, credentials, options=options)
        self._channel = channel
        self._timeout = timeout
        self.stub = fieldseal_pb2_grpc.FieldsealServiceStub(channel)
        """The generated stub, for the RPCs this class does not wrap (RotateKey, DescribeKey...)."""

    def __enter__(self) -> FieldsealClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def encrypt_fields(
        self,
        scope: ScopeLike,
        fields: Mapping[str, JsonValue],
        *,
        keyring: str = "",
        index_fields: Sequence[str] = (),
    ) -> EncryptResult:
        """Seals every field under the primary version of ``keyring`` (empty: the server's default), and
        returns the blind index of each field in ``index_fields`` (needs the ``index`` permission)."""
        request = fieldseal_pb2.EncryptFieldsRequest(
            keyring=keyring, scope=_scope(scope), index_fields=list(index_fields)
        )
        for name, value in fields.items():
            request.fields[name].CopyFrom(to_value(value))
        response = self._call(self.stub.EncryptFields, request)
        masked = {
            name: MaskedValue(m.format, m.text, m.speakable) for name, m in response.masked.items()
        }
        return EncryptResult(
            dict(response.sealed), response.keyring, response.key_version, masked, dict(response.indexes)
        )

    def compute_index(
        self, field: str, value: str, *, keyring: str = "", all_versions: bool = False
    ) -> list[str]:
        """The blind index of ``value`` for ``field`` without sealing it: under the primary key version,
        then (``all_versions``) under each older version that still opens values. Needs ``index:<field>``."""
        request = fieldseal_pb2.ComputeIndexRequest(
            keyring=keyring, field=field, value=value, all_versions=all_versions
        )
        return list(self._call(self.stub.ComputeIndex, request).indexes)

    def decrypt_field(self, scope: ScopeLike, field: str, sealed: str) -> JsonValue:
        """Opens one sealed value; returns it as the JSON type it was sealed as. Raises FieldsealError."""
        request = fieldseal_pb2.DecryptFieldRequest(scope=_scope(scope), field=field, sealed=sealed)
        response = self._call(self.stub.DecryptField, request)
        return from_value(response.value)

    def decrypt_fields(
        self, scope: ScopeLike, items: Union[Mapping[str, str], Iterable[tuple[str, str]]]
    ) -> list[DecryptResult]:
        """Opens many sealed values of one scope: ``{field: sealed}`` or ``(field, sealed)`` pairs.

        Each item gets its own result, in request order; one bad item does not fail the rest. Problems
        with the request itself (credentials, scope) raise FieldsealError.
        """
        pairs = items.items() if isinstance(items, Mapping) else items
        request = fieldseal_pb2.DecryptFieldsRequest(
            scope=_scope(scope),
            items=[fieldseal_pb2.SealedField(field=field, sealed=sealed) for field, sealed in pairs],
        )
        response = self._call(self.stub.DecryptFields, request)
        results = []
        for item in response.results:
            if item.WhichOneof("outcome") == "error":
                error = error_for_code(item.error.reason or item.error.code, item.error.message)
                results.append(DecryptResult(item.field, None, error, item.key_version))
            else:
                results.append(DecryptResult(item.field, from_value(item.value), None, item.key_version))
        return results

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self._timeout)
        except grpc.RpcError as err:
            raise _translate(err) from None


def to_value(value: JsonValue) -> struct_pb2.Value:
    """A JSON-native Python value as a ``google.protobuf.Value``; refuses what JSON cannot carry exactly."""
    out = struct_pb2.Value()
    if value is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise InvalidArgument("integer is too large for a JSON number; seal it as a string")
        out.number_value = float(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument("NaN and Infinity are not JSON numbers")
        out.number_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, (list, tuple)):
        out.list_value.values.extend(to_value(item) for item in value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgument("object keys must be strings")
            out.struct_value.fields[key].CopyFrom(to_value(item))
    else:
        raise InvalidArgument(f"value of type {type(value).__name__} is not JSON")
    return out


def from_value(value: struct_pb2.Value) -> JsonValue:
    """A ``google.protobuf.Value`` as the JSON-native Python value the offline opener returns for it."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        number = value.number_value
        # Same types as json.loads of the sealed JSON text: 3 is an int, 2.5 and 1e21 are floats.
        if number.is_integer() and abs(number) < _INTEGRAL_LIMIT:
            return int(number)
        return number
    if kind == "list_value":
        return [from_value(item) for item in value.list_value.values]
    if kind == "struct_value":
        return {key: from_value(item) for key, item in value.struct_value.fields.items()}
    return None


def _scope(scope: ScopeLike) -> fieldseal_pb2.Scope:
    if isinstance(scope, fieldseal_pb2.Scope):
        return scope
    kind, sep, scope_id = scope.partition(":")
    if sep and kind == "session":
        return fieldseal_pb2.Scope(session_id=scope_id)
    if sep and kind == "user":
        return fieldseal_pb2.Scope(user_id=scope_id)
    raise InvalidArgument("scope must be 'session:<sessionId>' or 'user:<userId>'")


def _translate(err: grpc.RpcError) -> FieldsealError:
    status = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = (err.details() if isinstance(err, grpc.Call) else None) or str(status)
    trailers = dict(err.trailing_metadata() or ()) if isinstance(err, grpc.Call) else {}
    reason = trailers.get(REASON_METADATA)
    code = str(reason) if reason else status.name.lower()
    request_id = trailers.get(REQUEST_ID_METADATA)
    return error_for_code(
        code, message, status=status, request_id=str(request_id) if request_id is not None else None
    )


class _CallDetails(NamedTuple):
    method: str
    timeout: Optional[float]
    metadata: Optional[Sequence[tuple[str, Union[str, bytes]]]]
    credentials: Optional[grpc.CallCredentials]
    wait_for_ready: Optional[bool]
    compression: Any


class _BearerToken(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return continuation(
            _CallDetails(
                details.method,
                details.timeout,
                metadata,
                details.credentials,
                details.wait_for_ready,
                details.compression,
            ),
            request,
        )
