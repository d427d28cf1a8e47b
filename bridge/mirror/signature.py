"""Standard Webhooks signatures (https://www.standardwebhooks.com), as the engine's emitter signs.

    webhook-id: <message id>            webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(key, "id.timestamp.body")> [v1,<...> ...]

Secrets are written `whsec_<base64 key>`. Several secrets may be configured (rotation: old and
new both accepted for a while) and a sender may send several signatures; one match suffices.

Written here rather than taken from the `standardwebhooks` package because that one raises
ValueError / UnicodeDecodeError / binascii.Error on malformed headers or non-UTF-8 bodies, which
an intake must turn into a clean 401, and it accepts one secret only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from bridge.errors import BridgeError

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300


class SignatureError(BridgeError, ValueError):
    """The request is not signed by any configured secret (the message says why)."""


def decode_secret(secret: str) -> bytes:
    raw = secret.strip()
    if raw.startswith(SECRET_PREFIX):
        raw = raw[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if len(key) < 16:
        raise ValueError("a webhook secret needs at least 16 bytes of key")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(keys: Sequence[bytes], headers: Mapping[str, str], body: bytes, *,
           now: float | None = None, tolerance_s: int = TOLERANCE_S) -> str:
    """Checks the signature headers against the body; returns the webhook-id or raises SignatureError."""
    msg_id = headers.get("webhook-id", "")
    raw_timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and raw_timestamp and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit()):  # not "¹", which isdigit too
        raise SignatureError("webhook-timestamp is not Unix seconds")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(f"webhook-timestamp is more than {tolerance_s}s away from now")
    offered = []
    for item in signatures.split():
        version, _, value = item.partition(",")
        if version != "v1" or not value:
            continue
        try:
            offered.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not offered:
        raise SignatureError("no v1 signature in webhook-signature")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    for key in keys:
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return msg_id
    raise SignatureError("no signature matches a configured secret")
