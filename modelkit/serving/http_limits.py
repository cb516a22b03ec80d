"""What bounds the prediction server's connections: which Host names it answers, how many
connections it serves at once, and how long a request's head may take to arrive.

uvicorn closes a keep-alive connection left idle, but waits for ever on a request head sent a
byte at a time (or never finished): a few hundred such connections (slowloris) each held a socket
for good. ``HeadDeadline`` closes a connection whose head has not arrived in full in time; beyond
``max_connections`` uvicorn answers 503 instead of taking on more; headers are capped in size.

Without a Host allow-list, a web page that re-points its own domain at this machine (DNS
rebinding) could drive the server from a browser on it; Starlette's TrustedHostMiddleware answers
400 to any name not on the list (``allowed_hosts``).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
MAX_CONNECTIONS = 100  # served at once; beyond it uvicorn answers 503
HEAD_TIMEOUT_S = 10.0  # for a request's line and headers to arrive in full
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this
MAX_HEAD_BYTES = 16 * 1024  # a request head (line and headers) larger than this gets 400
_WILDCARDS = ("0.0.0.0", "::", "")  # listen on every address: not a name a client sends


def _host_name(name: str) -> str:
    """``name`` as a Host header carries it: lower case, an IPv6 literal in brackets."""
    name = name.strip().lower()
    try:
        if ipaddress.ip_address(name).version == 6:
            return f"[{name}]"
    except ValueError:
        pass
    if "*" in name[1:] or (name.startswith("*") and name != "*" and not name.startswith("*.")):
        raise ValueError(f"allowed host {name!r}: a wildcard must be '*' or like '*.example.org'")
    return name


def allowed_hosts(bind_host: str, extra: Sequence[str] = ()) -> list[str]:
    """The Host names the server answers: this machine's, the address it listens on (unless it
    listens on every address), and ``extra`` (``--allowed-host``; ``*`` allows any)."""
    names = [*LOCAL_HOSTS, *([] if bind_host in _WILDCARDS else [bind_host]), *extra]
    out: list[str] = []
    for name in map(_host_name, names):
        if name and name not in out:
            out.append(name)
    return out


class HeadDeadline(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request head (from the connection's start
    or the previous response's end) after which a connection still waiting for it is closed."""

    head_timeout: float = HEAD_TIMEOUT_S
    _head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_late)

    def _head_late(self) -> None:
        # h11 stays IDLE until a whole request line and headers have arrived
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # a keep-alive connection's next head gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)


def server_options(
    max_connections: int = MAX_CONNECTIONS, head_timeout: float = HEAD_TIMEOUT_S
) -> dict[str, Any]:
    """uvicorn.run / uvicorn.Config keywords that bound the connections (the one place both the
    command and ``server.running`` take them from)."""
    protocol = type("HeadDeadline", (HeadDeadline,), {"head_timeout": head_timeout})
    return {
        "http": protocol,
        "limit_concurrency": max_connections,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
