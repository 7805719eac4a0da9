"""The shared scope-keyed vectors (test/vectors/scoped.json): fs1s values opened with a data key."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Optional

import pytest

from fieldseal_client import FieldsealError, StaticKeys, open_scoped_value
from fieldseal_client.envelope import build_scoped_aad, derive_value_key, parse_scoped_envelope, unwrap_data_key

VECTORS_FILE = Path(__file__).resolve().parents[3] / "test" / "vectors" / "scoped.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
KEYS = StaticKeys.from_base64(VECTORS["keys"])
DATA_KEYS = {(k["keyring"], k["scope"], k["generation"]): base64.b64decode(k["data_key"]) for k in VECTORS["scope_keys"]}


def data_key(keyring: str, scope: str, generation: int) -> Optional[bytes]:
    return DATA_KEYS.get((keyring, scope, generation))


def scope_of(case: dict[str, Any]) -> str:
    return f"{case['scope']['kind']}:{case['scope']['id']}"


def test_has_cases_of_every_kind() -> None:
    assert len(VECTORS["valid"]) >= 4
    assert len(VECTORS["invalid"]) >= 10


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_opens(case: dict[str, Any]) -> None:
    value = open_scoped_value(case["envelope"], KEYS, data_key, scope_of(case), case["field"])
    assert value == case["value"]


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_derives_the_same_key_and_aad(case: dict[str, Any]) -> None:
    key = derive_value_key(data_key(case["keyring"], scope_of(case), case["generation"]) or b"", KEYS(case["keyring"], case["version"]))
    assert key.hex() == case["value_key_hex"]
    aad = build_scoped_aad(case["keyring"], case["version"], case["generation"], scope_of(case), case["field"])
    assert aad.hex() == case["aad_hex"]
    assert parse_scoped_envelope(case["envelope"]).nonce.hex() == case["nonce_hex"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_refuses(case: dict[str, Any]) -> None:
    with pytest.raises(FieldsealError) as raised:
        open_scoped_value(case["envelope"], KEYS, data_key, scope_of(case), case["field"])
    assert raised.value.code == case["error"]


@pytest.mark.parametrize("case", VECTORS["scope_keys"], ids=lambda c: f"{c['scope']} g{c['generation']}")
def test_unwraps_data_keys(case: dict[str, Any]) -> None:
    wrapped = bytes.fromhex(case["wrapped_hex"])
    key = KEYS(case["keyring"], case["wrap_version"])
    unwrapped = unwrap_data_key(key, case["keyring"], case["wrap_version"], case["scope"], case["generation"], wrapped)
    assert unwrapped == base64.b64decode(case["data_key"])
    with pytest.raises(FieldsealError):
        unwrap_data_key(key, case["keyring"], case["wrap_version"], "user:someone-else", case["generation"], wrapped)
