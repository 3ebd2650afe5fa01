"""The control channel: how the HTTP API, the admin and the websocket reach a running subtask.

A subtask's job, while it runs, keeps a short-lived "live" key in Redis and reads its command
list between frames when a sender has woken it (a message on its wake channel, which the job reads
from its subscription's socket without a round trip), and at least every POLL_FALLBACK seconds in
case a wake-up was lost (sent while the job was subscribing, or during a Redis outage). A sender
pushes a command onto that list, publishes the wake-up and waits for the job's acknowledgement on
a per-command reply list. The database stays the source of truth: callers
write the change first (service functions do), and the command tells the job to apply it now.
A subtask with no live job gets an immediate "applied" acknowledgement: the job reads the
database when it starts.

Redis keys (prefix settings.VIAS_CONTROL_PREFIX):
  <p>:live:<subtask_id>   set by the running job, expires unless refreshed (LIVE_TTL)
  <p>:cmd:<subtask_id>    list of JSON commands, oldest first
  <p>:ack:<command_id>    list holding the job's JSON answer, expires after ACK_TTL
  <p>:wake:<subtask_id>   pub/sub channel: "a command is waiting"
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cache
from typing import Any, cast

import redis
from django.conf import settings

from subtasks.engine import ACKNOWLEDGED, APPLIED, REFUSED, TIMEOUT, Ack
from subtasks.models import Subtask

# The job refreshes its live key at least this often (seconds); the key outlives a few misses.
LIVE_REFRESH = 1.0
LIVE_TTL = 5
ACK_TTL = 60
log = logging.getLogger(__name__)
COMMAND_TTL = 60
# The job reads its command list at least this often (seconds) without a wake-up.
POLL_FALLBACK = 1.0


@dataclass
class Command:
    """A command as the job receives it."""

    id: str
    op: str
    body: dict[str, Any] = field(default_factory=dict)


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)


def client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def _key(kind: str, ident: object) -> str:
    return f"{settings.VIAS_CONTROL_PREFIX}:{kind}:{ident}"


def default_timeout() -> float:
    return float(settings.VIAS_ACK_TIMEOUT)


# -- sending side ----------------------------------------------------------------------------


def send_to_subtask(subtask_id: int, command: dict[str, Any], timeout: float | None = None) -> Ack:
    return send_to_subtasks([subtask_id], command, timeout)[0]


def send_to_subtasks(
    subtask_ids: Iterable[int], command: dict[str, Any], timeout: float | None = None
) -> list[Ack]:
    """Deliver `command` ({"op": ..., ...}) to each subtask's running job and wait, all at once,
    for every acknowledgement until one shared deadline. Order of the answer = order of ids."""
    ids = list(dict.fromkeys(int(i) for i in subtask_ids))
    deadline = time.monotonic() + (default_timeout() if timeout is None else timeout)
    redis_client = client()
    waiting: dict[str, int] = {}
    answers: dict[int, Ack] = {}
    for subtask_id in ids:
        if not redis_client.exists(_key("live", subtask_id)):
            answers[subtask_id] = Ack(subtask_id, APPLIED, "not running; the stored configuration is used")
            continue
        command_id = uuid.uuid4().hex
        payload = json.dumps({**command, "id": command_id})
        with redis_client.pipeline() as pipe:
            pipe.rpush(_key("cmd", subtask_id), payload)
            pipe.expire(_key("cmd", subtask_id), COMMAND_TTL)
            pipe.publish(_key("wake", subtask_id), "1")
            pipe.execute()
        waiting[_key("ack", command_id)] = subtask_id
    _collect(redis_client, waiting, answers, deadline)
    return [answers[i] for i in ids]


def _collect(
    redis_client: redis.Redis, waiting: dict[str, int], answers: dict[int, Ack], deadline: float
) -> None:
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        popped = redis_client.blpop(list(waiting), timeout=max(left, 0.01))
        if popped is None:
            break
        key = cast(bytes, popped[0]).decode()  # the client answers bytes
        subtask_id = waiting.pop(key)
        answer = json.loads(popped[1])
        answers[subtask_id] = Ack(subtask_id, answer["status"], answer.get("reason", ""), answer["id"])
    for key, subtask_id in waiting.items():
        command_id = key.rsplit(":", 1)[1]
        answers[subtask_id] = Ack(subtask_id, TIMEOUT, "no acknowledgement in time", command_id)


def push_store_conf(store_conf: Any, timeout: float | None = None) -> list[Ack]:
    """Send a replaced storage config to every active subtask of every task that uses it."""
    ids = list(Subtask.objects.active().filter(task__store_conf=store_conf).values_list("pk", flat=True))
    command = {"op": "store_conf", "store_conf_id": store_conf.pk, "version": store_conf.version}
    return send_to_subtasks(ids, command, timeout)


# -- receiving side (the running job) ---------------------------------------------------------


class Inbox:
    """What a running subtask's job uses: announce itself live, read commands, answer them."""

    def __init__(self, subtask_id: int, redis_client: redis.Redis | None = None) -> None:
        self.subtask_id = subtask_id
        self.redis = redis_client or client()
        self._refreshed = 0.0
        self._polled = 0.0  # when the command list was last read (monotonic)
        self._wake: redis.client.PubSub | None = None

    def __enter__(self) -> Inbox:
        self.open()
        return self

    def open(self) -> None:
        self.redis.delete(_key("cmd", self.subtask_id))  # commands meant for an earlier run
        self._subscribe()
        self.keep_alive(force=True)

    def _subscribe(self) -> None:
        """Listen on the wake channel before going live, so that senders who see the live key wake
        this job (its confirmation read, so the server has the subscription)."""
        self._unsubscribe()
        wake = self.redis.pubsub()
        try:
            wake.subscribe(_key("wake", self.subtask_id))
            wake.get_message(timeout=1.0)
        except redis.RedisError:
            wake.close()
            raise
        self._wake = wake

    def _unsubscribe(self) -> None:
        if self._wake is not None:
            wake, self._wake = self._wake, None
            with suppress(redis.RedisError, OSError):
                wake.close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def keep_alive(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._refreshed >= LIVE_REFRESH:
            # The value is the worker's pid: operators (and the fault tests) can find the process.
            self.redis.set(_key("live", self.subtask_id), str(os.getpid()), ex=LIVE_TTL)
            self._refreshed = now

    def pending(self) -> list[Command]:
        """The commands waiting (as poll), read only after a wake-up or POLL_FALLBACK seconds:
        between frames this is a read of the subscription's socket, no round trip to Redis."""
        if not self._woken() and time.monotonic() - self._polled < POLL_FALLBACK:
            return []
        return self.poll()

    def _woken(self) -> bool:
        """Whether a sender published since the last look (drains the subscription). A broken
        subscription counts as woken and is made again: the poll that follows goes to Redis and
        meets an outage the way every other call does."""
        if self._wake is None:
            try:
                self._subscribe()
            except redis.RedisError:
                return True
        woken = False
        try:
            while (message := self._wake.get_message(timeout=0.0)) is not None:  # type: ignore[union-attr]
                woken = woken or message.get("type") == "message"
        except (redis.RedisError, OSError):
            self._unsubscribe()
            with suppress(redis.RedisError, OSError):
                self._subscribe()  # at once: a sender's wake-up after this poll is not lost
            return True
        return woken

    def poll(self) -> list[Command]:
        """Every command waiting, oldest first; never blocks."""
        self._polled = time.monotonic()
        key = _key("cmd", self.subtask_id)
        with self.redis.pipeline() as pipe:
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            raw, _ = pipe.execute()
        commands = []
        for item in raw:
            data = json.loads(item)
            commands.append(Command(id=data.pop("id"), op=data.pop("op", ""), body=data))
        return commands

    def ack(self, command: Command, ok: bool = True, reason: str = "") -> None:
        answer = {"id": command.id, "status": ACKNOWLEDGED if ok else REFUSED, "reason": reason}
        key = _key("ack", command.id)
        with self.redis.pipeline() as pipe:
            pipe.rpush(key, json.dumps(answer))
            pipe.expire(key, ACK_TTL)
            pipe.execute()

    def close(self) -> None:
        """No longer live: later senders get "applied" at once. Commands still queued are refused."""
        self._unsubscribe()
        self.redis.delete(_key("live", self.subtask_id))
        for command in self.poll():
            self.ack(command, ok=False, reason="the subtask stopped before applying it")


def notify_subtasks(subtask_ids: Iterable[int], command: dict[str, Any]) -> None:
    """Deliver without waiting for acknowledgements (a stop: the caller answers at once, the job
    also finds STOPPING in the database at its next heartbeat). Redis down: logged, not raised."""
    try:
        redis_client = client()
        for subtask_id in subtask_ids:
            if redis_client.exists(_key("live", subtask_id)):
                key = _key("cmd", subtask_id)
                with redis_client.pipeline() as pipe:
                    pipe.rpush(key, json.dumps({**command, "id": uuid.uuid4().hex}))
                    pipe.expire(key, COMMAND_TTL)
                    pipe.publish(_key("wake", subtask_id), "1")
                    pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not notify subtasks %s: %s", list(subtask_ids), exc)


def live_pid(subtask_id: int) -> int | None:
    """The pid of the worker process running a subtask's job, if one is live."""
    value = client().get(_key("live", subtask_id))
    return int(value) if value else None
