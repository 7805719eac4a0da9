"""The shared test vectors (test/vectors/envelopes.json): the contract every Fieldseal opener must meet."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from fieldseal_client import FieldsealError, StaticKeys, open_legacy_blob, open_value, parse_legacy_blob
from fieldseal_client.envelope import build_aad, parse_envelope

VECTORS_FILE = Path(__file__).resolve().parents[3] / "test" / "vectors" / "envelopes.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
KEYS = StaticKeys.from_base64(VECTORS["keys"])


def scope_of(case: dict[str, Any]) -> str:
    return f"{case['scope']['kind']}:{case['scope']['id']}"


def test_has_cases_of_every_kind() -> None:
    assert len(VECTORS["valid"]) >= 10
    assert len(VECTORS["invalid"]) >= 10
    assert len(VECTORS["legacy"]) >= 1


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_opens(case: dict[str, Any]) -> None:
    value = open_value(case["envelope"], KEYS, scope_of(case), case["field"])
    assert value == case["value"]
    assert type(value) is type(case["value"])


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_builds_the_same_aad(case: dict[str, Any]) -> None:
    aad = build_aad(case["keyring"], case["version"], scope_of(case), case["field"])
    assert aad.hex() == case["aad_hex"]
    assert parse_envelope(case["envelope"]).nonce.hex() == case["nonce_hex"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_refuses(case: dict[str, Any]) -> None:
    with pytest.raises(FieldsealError) as raised:
        open_value(case["envelope"], KEYS, scope_of(case), case["field"])
    assert raised.value.code == case["error"]


@pytest.mark.parametrize("case", VECTORS["legacy"], ids=lambda c: c["name"])
def test_opens_the_tutorial_blob(case: dict[str, Any]) -> None:
    key = base64.b64decode(case["key"])
    assert parse_legacy_blob(case["blob"]).key_version_label == case["label"]
    assert open_legacy_blob(case["blob"], key, case["field"]) == case["value"]


@pytest.mark.parametrize("case", VECTORS["legacy"], ids=lambda c: c["name"])
def test_refuses_the_tutorial_blob_in_another_field(case: dict[str, Any]) -> None:
    key = base64.b64decode(case["key"])
    with pytest.raises(FieldsealError) as raised:
        open_legacy_blob(case["blob"], key, "ssn")
    assert raised.value.code == "envelope_tampered"
