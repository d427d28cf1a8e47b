"""Standard Webhooks signing and verification, including hostile headers."""

from __future__ import annotations

import base64
import time

import pytest

from bridge.mirror.signature import SignatureError, decode_secret, sign, verify

KEY = b"k" * 32
OLD_KEY = b"o" * 32
BODY = b'{"events": []}'


def headers(msg_id="msg_1", ts=None, sig=None, body=BODY, key=KEY):
    ts = int(time.time()) if ts is None else ts
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": sig if sig is not None else sign(key, msg_id, ts, body)}


def test_known_vector_from_the_standard_webhooks_spec():
    # The spec's example: secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek,
    # timestamp 1614265330, body {"test": 2432232314}.
    key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_valid_signature_returns_the_message_id():
    assert verify([KEY], headers(), BODY) == "msg_1"


def test_rotation_any_configured_key_and_any_offered_signature():
    ts = int(time.time())
    both = f"{sign(OLD_KEY, 'm', ts, BODY)} {sign(KEY, 'm', ts, BODY)}"
    assert verify([KEY], headers("m", ts, both), BODY) == "m"
    assert verify([b"x" * 32, OLD_KEY], headers("m", ts, key=OLD_KEY), BODY) == "m"


@pytest.mark.parametrize("mutate, message", [
    (lambda h: h.pop("webhook-signature"), "missing"),
    (lambda h: h.update({"webhook-timestamp": "soon"}), "not Unix seconds"),
    (lambda h: h.update({"webhook-timestamp": "\u00b9"}), "not Unix seconds"),  # isdigit, yet no int
    (lambda h: h.update({"webhook-timestamp": str(int(time.time()) - 301)}), "more than 300s"),
    (lambda h: h.update({"webhook-timestamp": str(int(time.time()) + 301)}), "more than 300s"),
    (lambda h: h.update({"webhook-signature": "v1"}), "no v1 signature"),
    (lambda h: h.update({"webhook-signature": "v1,@@@not-base64"}), "no v1 signature"),
    (lambda h: h.update({"webhook-signature": "v2," + base64.b64encode(b"x").decode()}), "no v1 signature"),
    (lambda h: h.update({"webhook-id": "other"}), "no signature matches"),
])
def test_bad_headers_are_refused_with_a_reason(mutate, message):
    h = headers()
    mutate(h)
    with pytest.raises(SignatureError, match=message):
        verify([KEY], h, BODY)


def test_a_tampered_body_or_a_wrong_key_fails():
    with pytest.raises(SignatureError, match="no signature matches"):
        verify([KEY], headers(), BODY + b" ")
    with pytest.raises(SignatureError, match="no signature matches"):
        verify([OLD_KEY], headers(), BODY)
    with pytest.raises(SignatureError):
        verify([KEY], headers(), b"\xff\xfe not utf-8")


def test_secrets_must_be_whsec_base64_of_enough_bytes():
    assert decode_secret("whsec_" + base64.b64encode(KEY).decode()) == KEY
    with pytest.raises(ValueError, match="base64"):
        decode_secret("whsec_not base64!")
    with pytest.raises(ValueError, match="16 bytes"):
        decode_secret("whsec_" + base64.b64encode(b"short").decode())
