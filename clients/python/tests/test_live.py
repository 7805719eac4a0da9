"""The gRPC client against a real Fieldseal server (started by conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from fieldseal_client import (
    EnvelopeTampered,
    FieldsealClient,
    FieldsealError,
    Unauthenticated,
    session_scope,
    user_scope,
)

from .conftest import TOKEN

FIELDS = {
    "credit_card": "4111111111111111",
    "pin_tries": 3,
    "balance": -1234.5,
    "verified": True,
    "cleared": None,
    "address": {"city": "Zürich", "lines": ["Bahnhofstrasse 1"]},
}


@pytest.fixture
def client(server_address: str) -> Iterator[FieldsealClient]:
    with FieldsealClient(server_address, token=TOKEN, insecure=True) as c:
        yield c


def tamper(sealed: str) -> str:
    """Changes one payload character in the middle, keeping the text canonical base64url."""
    i = len(sealed) - 20
    return sealed[:i] + ("B" if sealed[i] == "A" else "A") + sealed[i + 1 :]


def test_seals_then_opens_one_field_at_a_time(client: FieldsealClient) -> None:
    scope = session_scope("sess_py_live")
    result = client.encrypt_fields(scope, FIELDS)
    assert set(result.sealed) == set(FIELDS)
    assert result.key_version >= 1
    for name, value in FIELDS.items():
        assert result.sealed[name].startswith(f"fs1.{result.keyring}.{result.key_version}.")
        opened = client.decrypt_field(scope, name, result.sealed[name])
        assert opened == value
        assert type(opened) is type(value)


def test_opens_many_fields_with_per_item_errors(client: FieldsealClient) -> None:
    scope = user_scope("user_py_live")
    sealed = client.encrypt_fields(scope, {"ssn": "999-99-0000", "credit_card": "4111111111111111"}).sealed
    results = client.decrypt_fields(
        scope,
        [("ssn", sealed["ssn"]), ("credit_card", tamper(sealed["credit_card"])), ("moved", sealed["ssn"])],
    )
    assert [r.field for r in results] == ["ssn", "credit_card", "moved"]
    assert results[0].ok and results[0].value == "999-99-0000"
    for failed in results[1:]:
        assert not failed.ok
        assert isinstance(failed.error, EnvelopeTampered)
        assert failed.error.code == "envelope_tampered"


def test_refuses_a_tampered_value(client: FieldsealClient) -> None:
    scope = session_scope("sess_py_tamper")
    sealed = client.encrypt_fields(scope, {"credit_card": "4111111111111111"}).sealed["credit_card"]
    with pytest.raises(EnvelopeTampered) as raised:
        client.decrypt_field(scope, "credit_card", tamper(sealed))
    assert raised.value.status == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.request_id


@pytest.mark.parametrize("token", ["fsk_not-the-token", None], ids=["wrong token", "no token"])
def test_refuses_a_wrong_token(server_address: str, token: str | None) -> None:
    with FieldsealClient(server_address, token=token, insecure=True) as c:
        with pytest.raises(Unauthenticated) as raised:
            c.decrypt_field(session_scope("s"), "credit_card", "fs1.default.1.AAAA")
    assert raised.value.status == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.code == "unauthenticated"


def test_returns_masks_and_blind_indexes_equal_to_compute_index(client: FieldsealClient) -> None:
    result = client.encrypt_fields(
        session_scope("sess_py_index"),
        {"card_on_file": "5555 5555 5555 4444", "note": "x"},
        index_fields=["card_on_file"],
    )
    assert set(result.masked) == {"card_on_file"}
    masked = result.masked["card_on_file"]
    assert (masked.format, masked.text, masked.speakable) == (
        "card",
        "Mastercard •••• 4444",
        "Mastercard ending in 4 4 4 4",
    )
    assert client.compute_index("card_on_file", "5555-5555-5555-4444") == [result.indexes["card_on_file"]]


def test_refuses_a_value_that_does_not_fit_its_format(client: FieldsealClient) -> None:
    with pytest.raises(FieldsealError) as raised:
        client.encrypt_fields(session_scope("sess_py_bad"), {"card_on_file": "5555555555554445"})
    assert raised.value.code == "field_format_invalid"
    assert raised.value.status == grpc.StatusCode.INVALID_ARGUMENT
    assert "5555" not in str(raised.value)
