"""docs/envelope.md's Python example, run as written against every shared test vector: it must be as strict
as the spec (and as this package's opener), or readers who copy it accept what Fieldseal refuses."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "envelope.md").read_text(encoding="utf-8")
VECTORS: dict[str, Any] = json.loads((ROOT / "test" / "vectors" / "envelopes.json").read_text(encoding="utf-8"))


def _example() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    assert len(blocks) == 1, "docs/envelope.md should hold exactly one Python example"
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "docs/envelope.md", "exec"), namespace)  # our own documentation, run as written
    return namespace


EXAMPLE = _example()
KEYS = {
    (keyring, int(version)): base64.b64decode(material, validate=True)
    for keyring, versions in VECTORS["keys"].items()
    for version, material in versions.items()
}


def scope_of(case: dict[str, Any]) -> str:
    return f"{case['scope']['kind']}:{case['scope']['id']}"


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_example_opens(case: dict[str, Any]) -> None:
    value = EXAMPLE["open_fs1"](case["envelope"], KEYS, scope_of(case), case["field"])
    assert value == case["value"]
    assert type(value) is type(case["value"])


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_example_refuses(case: dict[str, Any]) -> None:
    with pytest.raises(Exception):  # the example raises plain exceptions: any is a refusal
        EXAMPLE["open_fs1"](case["envelope"], KEYS, scope_of(case), case["field"])


@pytest.mark.parametrize("text", ["QR", "QQ==", "QQ=", "QQ\n", "Q Q", "Q", "QQF", "+w", "/w"])
def test_example_decoder_refuses_every_other_spelling(text: str) -> None:
    with pytest.raises(ValueError):
        EXAMPLE["b64url_canonical"](text)


def test_example_decoder_reads_the_canonical_spelling() -> None:
    assert EXAMPLE["b64url_canonical"]("QQ") == b"A"
    assert EXAMPLE["b64url_canonical"]("QUI") == b"AB"
    assert EXAMPLE["b64url_canonical"]("_w") == b"\xff"
