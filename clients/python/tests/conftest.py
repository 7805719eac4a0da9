"""Starts a real Fieldseal server for the live tests: the repository's build, its Node, a loopback port."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
TOKEN = "fsk_python-client-live-test-token"
READY_LINE = re.compile(r"^fieldseal listening on http://(\S+) ")
READY_TIMEOUT_S = 30.0


@pytest.fixture(scope="session")
def server_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a Fieldseal server that knows TOKEN with the encrypt, decrypt:* and index:* scopes,
    and the card format on the field ``card_on_file``."""
    if not (REPO_ROOT / "dist" / "src" / "cli.js").exists():
        pytest.fail("no server build at dist/src/cli.js: run `npm run build` in the repository root")
    data_dir = tmp_path_factory.mktemp("fieldseal")
    config = data_dir / "config.json"
    principal = {
        "name": "downstream",
        "tokenSha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
        "scopes": ["encrypt", "decrypt:*", "index:*"],
    }
    fields = {"card_on_file": {"format": "card"}}
    config.write_text(json.dumps({"principals": [principal], "fields": fields}), encoding="utf-8")
    env = {
        **os.environ,
        "FIELDSEAL_DATA_DIR": str(data_dir),
        "FIELDSEAL_CONFIG": str(config),
        "FIELDSEAL_PORT": "0",
        "FIELDSEAL_HOST": "127.0.0.1",
    }
    stderr_file = (data_dir / "stderr.log").open("w+b")
    proc = subprocess.Popen(
        [str(REPO_ROOT / "node_modules" / ".bin" / "node"), str(REPO_ROOT / "bin" / "fieldseal.js"), "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        # Keeps draining stdout (logs and audit lines go there too) so the server never blocks on it.
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield _wait_ready(lines, stderr_file)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stderr_file.close()


def _wait_ready(lines: queue.Queue[str | None], stderr_file: BinaryIO) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.001))
        except queue.Empty:
            pytest.fail(f"the server printed no ready line within {READY_TIMEOUT_S:.0f} s{_stderr(stderr_file)}")
        if line is None:
            pytest.fail(f"the server exited before it was ready{_stderr(stderr_file)}")
        match = READY_LINE.match(line)
        if match:
            return match.group(1)


def _stderr(stderr_file: BinaryIO) -> str:
    stderr_file.seek(0)
    text = stderr_file.read().decode("utf-8", "replace")
    return f"; stderr:\n{text}" if text else ""
