"""What a socket may hold for a client that does not read: bounded, whatever is pushed.

ASGI has no back-pressure for `websocket.send`: daphne writes every message into Twisted's
transport buffer at once, so a client that never reads would make the server keep every push
ever sent to it. The Outbox bounds both places:

- pushes wait in a deque of `capacity`; when it is full the oldest is dropped and the client is
  told how many with `{"push": "dropped", "count": n}` once it reads again;
- under daphne, a message is written only while the transport holds less than `max_pending`
  unread bytes; a client that leaves the backlog there for `stall_timeout` seconds is closed
  (1008) by the consumer.

Answers to commands are never dropped; they wait for the same room and are bounded by the
number of requests a socket may have in flight.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from tasks.api.ws.protocol import dumps

POLL_INTERVAL = 0.05


class Stalled(Exception):
    """The client has left data unread for longer than the stall timeout."""


def transport_of(send: Callable[..., Any]) -> Any:
    """Daphne's send is partial(server.handle_reply, protocol): its protocol's TCP transport,
    found under the wrappers middleware put around it (channels' session middleware keeps the
    one it wraps as `real_send`). None elsewhere (the tests' communicator, other servers):
    there the backlog is unknown and only the push queue bounds what is kept."""
    for _depth in range(8):
        if isinstance(send, functools.partial):
            return getattr(send.args[0], "transport", None) if send.args else None
        inner = getattr(getattr(send, "__self__", None), "real_send", None)
        if inner is None:
            return None
        send = inner
    return None


def pending_bytes(transport: Any) -> int:
    """Bytes written to a Twisted transport that the kernel has not taken yet (0 when unknown)."""
    if transport is None:
        return 0
    try:
        buffered = len(transport.dataBuffer) - transport.offset
        return buffered + transport._tempDataLen
    except (AttributeError, TypeError):
        return 0


class Outbox:
    def __init__(
        self,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        capacity: int,
        max_pending: int,
        stall_timeout: float,
        transport: Any = None,
    ) -> None:
        self._send = send
        self.transport = transport
        self.capacity = max(1, capacity)
        self.max_pending = max_pending
        self.stall_timeout = stall_timeout
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.dropped = 0
        self.dropped_total = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def push(self, body: dict[str, Any]) -> None:
        """Queue a push; never blocks. Drops the oldest when full."""
        if len(self.queue) >= self.capacity:
            self.queue.popleft()
            self.dropped += 1
            self.dropped_total += 1
        self.queue.append(body)
        self._wake.set()

    async def answer(self, body: dict[str, Any]) -> None:
        """Send an answer (never dropped) once the client has room for it."""
        await self._write(dumps(body))

    async def run(self) -> None:
        """The socket's sender: drains pushes in order. Raises Stalled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue:
                await self._room()
                if self.dropped:
                    count, self.dropped = self.dropped, 0
                    await self._write(dumps({"push": "dropped", "count": count}), room=False)
                if not self.queue:
                    break
                await self._write(dumps(self.queue.popleft()), room=False)

    async def _room(self) -> None:
        if pending_bytes(self.transport) <= self.max_pending:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stall_timeout
        while pending_bytes(self.transport) > self.max_pending:
            if loop.time() > deadline:
                raise Stalled()
            await asyncio.sleep(POLL_INTERVAL)

    async def _write(self, text: str, room: bool = True) -> None:
        if room:
            await self._room()
        await self._send({"type": "websocket.send", "text": text})
