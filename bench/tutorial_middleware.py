"""
The tutorial's design, re-implemented faithfully as the middleware it describes, for the end-to-end bench.

Source: "Encrypting Sensitive NICE Cognigy.AI Session Variables with Python" (its "Complete Working
Example"). Its functions are copied as written; only what it leaves out is added: an HTTP front door (it
says "middleware ... intercepts webhook payloads" but shows no server), which is a minimal asyncio HTTP/1.1
keep-alive server so that no framework's overhead is charged to the tutorial.

Deviations, each needed to run at all or to point it at the bench's emulators:
  1. The key in Secrets Manager is 32 ASCII characters (base64-encoded in the secret), because the tutorial
     calls key_bytes.decode("utf-8") on the key, which fails on 32 random bytes. A tutorial user had to do
     the same to get it working.
  2. boto3 reaches moto through AWS_ENDPOINT_URL and the fake credentials in the environment; httpx reaches
     the Cognigy simulator through COGNIGY_DOMAIN, exactly the variables the tutorial reads.
  3. Header names are matched case-insensitively (HTTP says they are; the tutorial's dict lookup would
     otherwise miss a lower-cased "x-sensitive-metadata").
Kept as written: one blocking boto3 get_secret_value per webhook inside the async handler (it blocks the
event loop), a new AESGCM object per webhook, the base64-of-JSON blob, logging at INFO level, httpx PUT
with its retry loop.
"""
import asyncio
import base64
import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import Dict, List, Optional

import boto3
import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, Field

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger(__name__)


class CognigyClient:
    def __init__(self, base_url: str, api_token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = api_token
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            timeout=httpx.Timeout(15.0)
        )


class SecretsManagerClient:
    def __init__(self, region_name: str = "us-east-1") -> None:
        self.region = region_name
        self.client = boto3.client("secretsmanager", region_name=region_name)


class WebhookPayload(BaseModel):
    sessionId: str
    variables: Dict[str, str] = Field(default_factory=dict)
    user: Optional[Dict] = None


def parse_sensitive_fields(headers: Dict[str, str], payload: WebhookPayload) -> List[str]:
    metadata_header = headers.get("X-Sensitive-Metadata", "")
    if not metadata_header:
        return []
    sensitive_keys = []
    for item in metadata_header.split(","):
        if item.startswith("field:"):
            key = item.split(":", 1)[1].strip()
            if key in payload.variables:
                sensitive_keys.append(key)
    return sensitive_keys


async def get_encryption_key(secrets_client: SecretsManagerClient, key_id: str) -> tuple[str, str]:
    response = secrets_client.client.get_secret_value(SecretId=key_id)
    secret_data = json.loads(response["SecretString"])
    key_bytes = base64.b64decode(secret_data["key"])
    return key_bytes.decode("utf-8"), secret_data["version"]


async def encrypt_sensitive_values(
    secrets_client: SecretsManagerClient,
    sensitive_keys: List[str],
    variables: Dict[str, str]
) -> Dict[str, str]:
    key_str, key_version = await get_encryption_key(secrets_client, "cognigy-session-key")
    aes = AESGCM(key_str.encode("utf-8"))
    encrypted_variables = {}

    for field in sensitive_keys:
        plaintext = variables[field]
        nonce = os.urandom(12)
        ciphertext = aes.encrypt(nonce, plaintext.encode("utf-8"), None)
        encrypted_blob = {
            "nonce": base64.b64encode(nonce).decode("utf-8"),
            "ciphertext": base64.b64encode(ciphertext).decode("utf-8"),
            "key_version": key_version,
            "encrypted_at": datetime.now(timezone.utc).isoformat(),
            "original_field": field
        }
        encrypted_variables[f"__enc_{field}"] = base64.b64encode(json.dumps(encrypted_blob).encode("utf-8")).decode("utf-8")
        encrypted_variables[field] = None

    return encrypted_variables


async def update_cognigy_session(cognigy_client: CognigyClient, sessionId: str, encrypted_variables: Dict[str, str]) -> dict:
    url = f"/api/v1/sessions/{sessionId}/variables"
    payload = {"variables": encrypted_variables}
    max_retries = 3
    retry_delay = 1.0

    for attempt in range(max_retries):
        try:
            response = await cognigy_client.client.put(url, json=payload)
            if response.status_code == 429:
                retry_after = float(response.headers.get("Retry-After", retry_delay))
                await asyncio.sleep(retry_after)
                retry_delay *= 2
                continue
            response.raise_for_status()
            return response.json()
        except httpx.HTTPStatusError as e:
            if e.response.status_code in (401, 403):
                raise
            elif e.response.status_code >= 500:
                await asyncio.sleep(retry_delay)
                retry_delay *= 2
                continue
            raise
        except Exception:
            raise
    raise RuntimeError("Max retries exceeded")


# ---- The front door the tutorial leaves out: a minimal asyncio HTTP/1.1 server. ----

class CaseInsensitiveHeaders(dict):
    def get(self, key, default=None):
        return super().get(key.lower(), default)


async def handle_webhook(cognigy: CognigyClient, secrets: SecretsManagerClient, headers, body: bytes):
    payload = WebhookPayload(**json.loads(body))
    sensitive_keys = parse_sensitive_fields(headers, payload)
    encrypted_vars = await encrypt_sensitive_values(secrets, sensitive_keys, payload.variables)
    await update_cognigy_session(cognigy, payload.sessionId, encrypted_vars)
    return {"sessionId": payload.sessionId, "variables": encrypted_vars}


async def serve_connection(reader, writer, cognigy, secrets):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = CaseInsensitiveHeaders()
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("Content-Length", "0")))
            if method == "POST" and path == "/webhooks/cognigy":
                try:
                    answer = json.dumps(await handle_webhook(cognigy, secrets, headers, body)).encode()
                    status = "200 OK"
                except Exception as e:  # the tutorial has no error handling at this level
                    logger.error("webhook failed: %s", type(e).__name__)
                    answer = json.dumps({"error": type(e).__name__}).encode()
                    status = "500 Internal Server Error"
            else:
                answer, status = b'{"error":"not found"}', "404 Not Found"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    finally:
        writer.close()


async def main():
    cognigy = CognigyClient(os.getenv("COGNIGY_DOMAIN"), os.getenv("COGNIGY_API_TOKEN"))
    secrets = SecretsManagerClient(os.getenv("AWS_REGION", "us-east-1"))
    server = await asyncio.start_server(
        lambda r, w: serve_connection(r, w, cognigy, secrets), "127.0.0.1", int(sys.argv[1])
    )
    print(f"tutorial middleware listening on http://127.0.0.1:{sys.argv[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
