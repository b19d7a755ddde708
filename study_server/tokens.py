"""Unguessable tokens and keyed hashes (HMAC-SHA256 with the per-study secret)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

__all__ = [
    "new_token",
    "token_is_signed",
    "new_public_id",
    "new_nonce",
    "TOKEN_RE",
    "NONCE_RE",
    "keyed",
    "worker_key",
    "legacy_worker_key",
    "worker_keys",
    "image_id",
    "form_signature",
    "entry_signature",
    "completion_code",
    "same",
]

#: participant tokens are 32 URL-safe characters (192 random bits)
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{22}")


_TOKEN_RANDOM = 20  # characters: 120 random bits
_TOKEN_MAC = 12  # characters: 72 bits of HMAC


def _token_mac(key: str, random_part: str) -> str:
    digest = hmac.new(key.encode(), f"token\x1f{random_part}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def new_token(key: str) -> str:
    """A participant token: 20 random characters and 12 of their HMAC under ``key`` (the
    installation secret), so a made-up token is recognised without a database lookup."""
    random_part = secrets.token_urlsafe(15)
    return random_part + _token_mac(key, random_part)


def token_is_signed(key: str, token: str) -> bool:
    """True for a token made by :func:`new_token` with this key.  Tokens made before
    signing existed (32 random characters) are valid too but not signed: they are looked
    up like any other, under the per-address limit for unknown links."""
    if len(token) != _TOKEN_RANDOM + _TOKEN_MAC:
        return False
    random_part, mac = token[:_TOKEN_RANDOM], token[_TOKEN_RANDOM:]
    return hmac.compare_digest(mac, _token_mac(key, random_part))


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def new_public_id() -> str:
    return secrets.token_hex(6)


def keyed(secret: str, *parts: object, length: int = 32) -> str:
    """Hex HMAC-SHA256 of the parts (joined by a separator no part can contain)."""
    msg = "\x1f".join(str(p) for p in parts).encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:length]


def worker_key(secret: str, worker_id: str) -> str:
    """A person's key in a study: the same whichever adapter they enter through."""
    return keyed(secret, "person", worker_id, length=64)


def legacy_worker_key(secret: str, adapter: str, worker_id: str) -> str:
    """The per-adapter key of participations made before schema revision 0002."""
    return keyed(secret, "worker", adapter, worker_id, length=64)


def worker_keys(secret: str, worker_id: str, adapters) -> list[str]:
    """Every key under which this person's participation may be stored."""
    return [worker_key(secret, worker_id)] + [
        legacy_worker_key(secret, a, worker_id) for a in sorted(adapters)
    ]


def image_id(secret: str, token: str, position: int, slot: int) -> str:
    """Opaque id of one option image of one participant's item (reveals nothing)."""
    return keyed(secret, "img", token, position, slot, length=24)


def form_signature(secret: str, token: str, position: int) -> str:
    """Binds an answer form to the participant and item it was rendered for."""
    return keyed(secret, "answer", token, position, length=24)


def entry_signature(secret: str, adapter: str, nonce: str, params: dict[str, str]) -> str:
    flat = [f"{k}={params[k]}" for k in sorted(params)]
    return keyed(secret, "entry", adapter, nonce, *flat, length=32)


def completion_code(secret: str, public_id: str) -> str:
    """A participant's completion code: 10 characters, unambiguous to read aloud."""
    digest = hmac.new(secret.encode(), f"code\x1f{public_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:10]


def same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a, b)
