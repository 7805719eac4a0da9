"""The shared blind index vectors (test/vectors/indexes.json): Python computes what the server computes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from fieldseal_client.blind_index import blind_index, index_key, normalize

VECTORS_FILE = Path(__file__).resolve().parents[3] / "test" / "vectors" / "indexes.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))


def key_of(case: dict[str, Any]) -> bytes:
    return base64.b64decode(VECTORS["keys"][case["keyring"]][str(case["version"])])


def test_has_cases_of_every_format() -> None:
    assert {c["format"] for c in VECTORS["cases"]} >= {"card", "email", "phone", "national_id", "generic", None}


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_normalizes(case: dict[str, Any]) -> None:
    assert normalize(case["format"], case["input"]) == case["normalized"]


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_computes_the_same_index(case: dict[str, Any]) -> None:
    key = key_of(case)
    assert index_key(key, case["keyring"], case["field"]).hex() == case["index_key_hex"]
    assert blind_index(key, case["keyring"], case["version"], case["field"], case["normalized"]) == case["index"]


def test_refuses_a_field_that_could_make_the_info_ambiguous() -> None:
    with pytest.raises(ValueError):
        index_key(b"\0" * 32, "default", "a\0b")


@pytest.mark.parametrize("keyring", ["", "de\0fault", "a.b", "Default", "-x", "k" * 64])
def test_refuses_a_keyring_name_the_server_refuses(keyring: str) -> None:
    with pytest.raises(ValueError):
        index_key(b"\0" * 32, keyring, "email")


def test_refuses_a_field_name_the_server_refuses() -> None:
    with pytest.raises(ValueError):
        index_key(b"\0" * 32, "default", "")
    with pytest.raises(ValueError):
        index_key(b"\0" * 32, "default", "\u00e9" * 129)
    with pytest.raises(UnicodeEncodeError):
        index_key(b"\0" * 32, "default", "a\ud800")
    assert len(index_key(b"\0" * 32, "default", "f" * 256)) == 32
