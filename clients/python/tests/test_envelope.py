"""The offline opener's edges beyond the shared vectors: inputs it must refuse before any decryption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fieldseal_client import (
    EnvelopeMalformed,
    EnvelopeTampered,
    InvalidArgument,
    KeyVersionNotFound,
    StaticKeys,
    TooLarge,
    open_value,
    session_scope,
    user_scope,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parents[3] / "test" / "vectors" / "envelopes.json").read_text(encoding="utf-8")
)
KEYS = StaticKeys.from_base64(VECTORS["keys"])
CARD = VECTORS["valid"][0]
SCOPE = session_scope(CARD["scope"]["id"])


def test_opens_with_a_plain_function_as_key_lookup() -> None:
    def lookup(keyring: str, version: int) -> bytes:
        return KEYS(keyring, version)

    assert open_value(CARD["envelope"], lookup, SCOPE, CARD["field"]) == CARD["value"]


def test_a_lookup_returning_none_means_no_such_version() -> None:
    with pytest.raises(KeyVersionNotFound):
        open_value(CARD["envelope"], lambda keyring, version: None, SCOPE, CARD["field"])


def test_refuses_a_key_that_is_not_32_bytes() -> None:
    with pytest.raises(InvalidArgument):
        open_value(CARD["envelope"], lambda keyring, version: b"\x00" * 16, SCOPE, CARD["field"])


@pytest.mark.parametrize(
    "scope",
    ["sess_8f3a2c1d", "tenant:sess_8f3a2c1d", "session:", "session:a\0b", "session:" + "x" * 257, "session:\udc00"],
)
def test_refuses_an_invalid_scope(scope: str) -> None:
    with pytest.raises(InvalidArgument):
        open_value(CARD["envelope"], KEYS, scope, CARD["field"])


@pytest.mark.parametrize("field", ["", "a\0b", "f" * 257])
def test_refuses_an_invalid_field_name(field: str) -> None:
    with pytest.raises(InvalidArgument):
        open_value(CARD["envelope"], KEYS, SCOPE, field)


@pytest.mark.parametrize(
    "text",
    [
        CARD["envelope"] + "\n",
        CARD["envelope"].replace(".1.", ".1\n."),
        CARD["envelope"].replace("fs1.default", "fs1.Default"),
        CARD["envelope"].replace(".1.", ".4294967296."),
        CARD["envelope"][:-1] + "+",
        CARD["envelope"] + "x",
    ],
    ids=["trailing newline", "newline in version", "uppercase keyring", "version too large", "base64 not url", "bad length"],
)
def test_refuses_non_canonical_text(text: str) -> None:
    with pytest.raises(EnvelopeMalformed):
        open_value(text, KEYS, SCOPE, CARD["field"])


def test_refuses_stray_trailing_bits() -> None:
    # 3 payload bytes short of a multiple of 3 leave unused bits in the last character; setting them must fail.
    for case in VECTORS["valid"]:
        payload = case["envelope"].split(".")[3]
        if len(payload) % 4 == 3:
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            last = alphabet.index(payload[-1])
            changed = case["envelope"][:-1] + alphabet[last ^ 1]
            with pytest.raises(EnvelopeMalformed):
                open_value(changed, KEYS, f"{case['scope']['kind']}:{case['scope']['id']}", case["field"])
            return
    pytest.skip("no vector with a payload length of 3 mod 4")


def test_refuses_oversized_text_before_decoding() -> None:
    with pytest.raises(TooLarge):
        open_value("fs1.default.1." + "A" * 90_000, KEYS, SCOPE, CARD["field"])


def test_a_user_scope_is_not_a_session_scope() -> None:
    with pytest.raises(EnvelopeTampered):
        open_value(CARD["envelope"], KEYS, user_scope(CARD["scope"]["id"]), CARD["field"])
