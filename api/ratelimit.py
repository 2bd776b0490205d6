"""A per-client-address rate limit: one token bucket per address, and a stricter one for the
sign-in routes.

Each bucket holds up to a minute's worth of requests and refills at ``per_minute / 60`` a
second, so a client may burst up to its minute's allowance and then goes at the steady rate.
An empty bucket answers 429 with ``Retry-After`` (whole seconds until the next request would
pass). The limits come from vault/config.py (``CUSTODY_RATE_LIMIT``,
``CUSTODY_LOGIN_RATE_LIMIT``; 0 turns one off).

The buckets live in this process's memory: with several worker processes (``custody serve
--workers N``) each keeps its own, so an address may get up to N times the limit; behind a
reverse proxy every client has the proxy's address unless uvicorn is told to trust the proxy's
``X-Forwarded-For`` (``--proxy-headers --forwarded-allow-ips``). The account lockout in
vault/services/users.py is what bounds password guessing against one account; this bounds how
fast any one address can try (many accounts, or anything else).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import send_error

#: routes that take a secret to check (a password, an unseal passphrase): the stricter limit
SIGN_IN_PATHS = ("/auth/login", "/sys/unseal")
#: not limited: a liveness probe, cheap and revealing nothing
EXEMPT_PATHS = ("/health",)
#: addresses remembered at most; beyond, the least recently seen are forgotten (memory bound)
MAX_ADDRESSES = 10_000


class Buckets:
    """Token buckets by key; ``take`` answers 0 if a request may pass, else seconds to wait."""

    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        now = self.clock()
        tokens, then = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > MAX_ADDRESSES:
            self._buckets.popitem(last=False)
        return wait


class RateLimit:
    def __init__(self, app: ASGIApp, *, per_minute: float, sign_in_per_minute: float) -> None:
        self.app = app
        self.general = Buckets(per_minute) if per_minute > 0 else None
        self.sign_in = Buckets(sign_in_per_minute) if sign_in_per_minute > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        wait = 0.0
        if self.sign_in is not None and scope["path"] in SIGN_IN_PATHS:
            wait = self.sign_in.take(address)
        if not wait and self.general is not None:
            wait = self.general.take(address)
        if wait:
            await send_error(
                send,
                429,
                "rate_limited",
                "too many requests from this address: retry later",
                headers=[(b"retry-after", str(max(1, math.ceil(wait))).encode())],
            )
            return
        await self.app(scope, receive, send)
