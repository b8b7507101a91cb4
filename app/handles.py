"""Explicit handles: self-contained, HMAC-SHA256 signed, expiring state tokens.

A stateless server keeps no per-client state, so state that spans requests
(the ``tally`` tool's running total) travels in the handle itself, signed so
a client cannot alter it and stamped with an expiry so it cannot live forever.
Any instance, in either slot, verifies a handle minted by any other, because
they all share one key ring (``MCP_HANDLE_KEYS``).

Wire form (ASCII, URL-safe)::

    v1.<kid>.<payload>.<signature>

``payload`` is base64url (unpadded) of compact JSON ``{"s": state, "exp":
unix-seconds}``, plus ``"c"`` for a handle bound to a caller, ``signature``
base64url HMAC-SHA256 over ``v1.<kid>.<payload>`` with the secret of key
``kid``. The payload is signed, not encrypted: a handle must not carry
secrets (a tally total is not one).

Caller binding: minted with ``caller=`` (`app.identity.current_caller()`
behind Easy Auth), a handle opens only for the same caller, on any instance
(`WrongCaller` otherwise, and for a bound handle presented without a caller
or the reverse). ``"c"`` is a digest of the caller's principal, not the id
itself, since handles end up in client logs. Without Easy Auth every caller is
None, and handles behave as they always did.

Why the standard library and not a token library (PyJWT, itsdangerous): the
whole format is one HMAC and one constant-time compare, both in ``hmac``;
a JWT library would add a dependency to the deployed app plus algorithm
negotiation (``alg`` headers) that this closed format does not want, and none
of them gives the four distinct verification errors the API promises.

Verification order matters: the key id is looked up, then the signature is
checked, and only then are the (now trusted) expiry and caller read, so an
attacker cannot learn anything from their errors on forged tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.contract import HANDLE_KEYS_ENV, KeyRingError, parse_key_ring  # noqa: F401 (KeyRing.parse raises KeyRingError)
from app.identity import Caller

logger = logging.getLogger(__name__)

VERSION = "v1"
MIN_SECRET_LENGTH = 16
MAX_HANDLE_LENGTH = 4096
KEYS_ENV = HANDLE_KEYS_ENV


class HandleError(ValueError):
    """A handle that cannot be honoured; the message names what is wrong with it."""

    kind = "invalid"


class MalformedHandle(HandleError):
    kind = "malformed"


class UnknownHandleKey(HandleError):
    kind = "unknown-key"


class ForgedHandle(HandleError):
    kind = "forged"


class ExpiredHandle(HandleError):
    kind = "expired"


class WrongCaller(HandleError):
    kind = "wrong-caller"


@dataclass(frozen=True)
class KeyRing:
    """Signing keys by id; the first key signs, every key verifies (so keys rotate)."""

    keys: Mapping[str, bytes]
    signing_kid: str
    ephemeral: bool = False

    @classmethod
    def parse(cls, spec: str, env: str = KEYS_ENV, min_secret: int = MIN_SECRET_LENGTH) -> KeyRing:
        """Parse ``kid:secret,kid2:secret2`` read from ``env`` (`app.contract.parse_key_ring`'s rules)."""
        keys = {kid: secret.encode() for kid, secret in parse_key_ring(spec, env, min_secret).items()}
        return cls(keys=keys, signing_kid=next(iter(keys)))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], env: str = KEYS_ENV, min_secret: int = MIN_SECRET_LENGTH, what: str = "handles"
    ) -> KeyRing:
        """The ring in ``environ[env]``; unset, a random per-process key and a warning saying what breaks."""
        spec = environ.get(env, "")
        if spec.strip():
            return cls.parse(spec, env, min_secret)
        kid = "local-" + secrets.token_hex(4)
        logger.warning(
            "%s is not set: %s are sealed with a random per-process key (id %s); they will not "
            "verify on other processes, other workers or after a restart. Set %s in any shared deployment.",
            env,
            what,
            kid,
            env,
        )
        return cls(keys={kid: secrets.token_bytes(32)}, signing_kid=kid, ephemeral=True)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _caller_digest(caller: Caller) -> str:
    return _b64(hashlib.sha256(caller.principal.encode()).digest()[:16])


class HandleCodec:
    """Mints and verifies handles with a key ring and a lifetime."""

    def __init__(self, ring: KeyRing, ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"handle lifetime must be positive, got {ttl_seconds}")
        self.ring = ring
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    def _sign(self, kid: str, signed_part: str) -> str:
        return _b64(hmac.new(self.ring.keys[kid], signed_part.encode("ascii"), hashlib.sha256).digest())

    def mint(self, state: Any, caller: Caller | None = None) -> tuple[str, int]:
        """Return ``(handle, expires_at)`` for ``state`` (any JSON value), bound to ``caller`` if given."""
        expires_at = int(self._clock()) + self.ttl_seconds
        body = {"s": state, "exp": expires_at}
        if caller is not None:
            body["c"] = _caller_digest(caller)
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        kid = self.ring.signing_kid
        signed_part = f"{VERSION}.{kid}.{payload}"
        return f"{signed_part}.{self._sign(kid, signed_part)}", expires_at

    def open(self, handle: str, caller: Caller | None = None) -> Any:
        """Return the state inside ``handle`` (minted for ``caller``), or raise a `HandleError` naming the problem."""
        if not isinstance(handle, str) or len(handle) > MAX_HANDLE_LENGTH or not handle.isascii():
            raise MalformedHandle(
                f"handle is malformed: expected an ASCII string of at most {MAX_HANDLE_LENGTH} characters"
            )
        parts = handle.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            raise MalformedHandle(
                f"handle is malformed: expected '{VERSION}.<key id>.<payload>.<signature>', "
                f"got {len(parts)} dot-separated part(s)"
            )
        _, kid, payload, signature = parts
        key = self.ring.keys.get(kid)
        if key is None:
            raise UnknownHandleKey(
                f"handle was signed with key id {kid!r}, which this server does not have "
                f"(known key ids: {', '.join(sorted(self.ring.keys))}); it was minted by a server with "
                "a different key ring, or its key has been retired"
            )
        expected = self._sign(kid, f"{VERSION}.{kid}.{payload}")
        if not hmac.compare_digest(expected, signature):
            raise ForgedHandle("handle signature does not verify: the handle was altered or forged")
        try:
            body = json.loads(_unb64(payload))
            expires_at = body["exp"]
            state = body["s"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            # A validly signed but unreadable payload means a key was shared with a foreign minter.
            raise MalformedHandle("handle is malformed: its payload is not a readable handle body") from None
        if isinstance(expires_at, bool) or not isinstance(expires_at, int):
            raise MalformedHandle("handle is malformed: its expiry is not an integer")
        now = self._clock()
        if now >= expires_at:
            when = datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="seconds")
            raise ExpiredHandle(
                f"handle expired at {when} ({int(now - expires_at)} s ago; handles live {self.ttl_seconds} s); "
                "start a new one by calling without a handle"
            )
        bound_to = body.get("c")
        if bound_to != (_caller_digest(caller) if caller is not None else None):
            if caller is None:
                problem = "was minted for a signed-in caller, and this request has none"
            elif bound_to is None:
                problem = "was minted without a signed-in caller, and this request has one"
            else:
                problem = "was minted for another caller"
            raise WrongCaller(
                f"handle {problem}; a handle works only for the caller it was minted for "
                "(start a new one by calling without a handle)"
            )
        return state
