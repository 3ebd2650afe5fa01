"""The websocket endpoint /wsapi/v1/devconf_fx (docs/websocket.md).

One consumer per socket. It authenticates on connect, then reads requests and runs each in an
asyncio task of its own (database work and waiting for device acknowledgements in a thread
pool), so a slow command never holds up a fast one. Subscriptions join the channel-layer groups
vias.lib.announce sends to; pushes leave through a bounded Outbox. When Redis goes away the
socket is told so and closed with 1012 (service restart): clients reconnect, and are served
again as soon as Redis answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import redis.exceptions
from asgiref.sync import SyncToAsync
from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from django.utils import translation
from django.utils.translation import gettext as _
from rest_framework import serializers

from tasks import queries
from tasks.api.serializers import SCHEDULING, format_dt
from tasks.api.ws import commands
from tasks.api.ws.auth import authenticate, language_of, scope_headers, scope_query
from tasks.api.ws.flow import Outbox, Stalled, transport_of
from tasks.api.ws.protocol import (
    BrokerUnavailable,
    ProtocolError,
    Request,
    TooManyRequests,
    UnknownCommand,
    echo_of,
    error_answer,
    parse_request,
    parse_text,
)
from tasks.models import Project, Task
from vias.lib.announce import project_group, task_group
from vias.lib.api import NativeAPIView
from vias.lib.envelopes import native_ok
from vias.lib.errors import NotFound

log = logging.getLogger(__name__)

# Close codes (RFC 6455 and the 4000-4999 range left to applications).
CLOSE_SERVICE_RESTART = 1012  # Redis unavailable: reconnect in a moment
CLOSE_POLICY = 1008  # the client left too much unread for too long
CLOSE_UNAUTHORIZED = 4401  # no or bad credentials on connect
CLOSE_FORBIDDEN = 4403  # a user in no project

# Kinds after which a task's per-state counts may have changed: a "task.state" push follows.
COUNTS_KINDS = {
    "state",
    "subtask.state",
    "subtask.schedule",
    "subtask.deleted",
    "task.created",
    "task.updated",
}
# Pushes about one task within this window share one counts query per process.
COUNTS_DEBOUNCE = 0.1
BROKER_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError)

_executor: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.VIAS_WS_THREADS, thread_name_prefix="vias-ws")
    return _executor


def in_thread(func, *args: Any) -> Any:
    """Run blocking work (ORM, acknowledgements) in the websocket pool, not Django's single
    thread-sensitive one: a command waiting 10 s for devices must not hold up the others."""

    def run() -> Any:
        # Closed here, inside the context the function ran in: asgiref re-homes Local storage
        # (Django's connections) into that context, where channels' DatabaseSyncToAsync, which
        # closes outside it, would not see the connection and leave it open.
        close_old_connections()
        try:
            return func(*args)
        finally:
            close_old_connections()

    return SyncToAsync(run, thread_sensitive=False, executor=executor())()


class TaskCounts:
    """Per-process single-flight cache of a task's state and per-state counts, so one state
    change seen by a thousand subscribers costs one query, not a thousand."""

    _pending: dict[str, tuple[float, asyncio.Future]] = {}

    @classmethod
    async def get(cls, task_id: str) -> dict[str, Any] | None:
        now = time.monotonic()
        entry = cls._pending.get(task_id)
        if (
            entry is None
            or now - entry[0] > COUNTS_DEBOUNCE
            or entry[1].get_loop() is not asyncio.get_running_loop()
        ):
            future = asyncio.ensure_future(in_thread(cls._read, task_id))
            cls._pending[task_id] = (now, future)
            if len(cls._pending) > 10000:
                cls._pending = {k: v for k, v in cls._pending.items() if now - v[0] <= COUNTS_DEBOUNCE}
        else:
            future = entry[1]
        return await asyncio.shield(future)

    @staticmethod
    def _read(task_id: str) -> dict[str, Any] | None:
        rows = queries.task_rows(Task.objects.filter(task_id=task_id))
        if not rows:
            return None
        row = rows[0]
        return {
            "state": row["state"],
            "state_counts": row["state_counts"],
            "subtask_count": row["subtask_count"],
            **schedule_fields(row["next_start"]),
        }


def schedule_fields(waiting_until: datetime | str | None) -> dict[str, Any]:
    """What waits for its mtask's window, as the native API shows it: `schedule_state`
    ("SCHEDULING" or "") and `next_start_dt` (the native time format, or null)."""
    if isinstance(waiting_until, str):
        waiting_until = datetime.fromisoformat(waiting_until)
    return {
        "schedule_state": SCHEDULING if waiting_until else "",
        "next_start_dt": format_dt(waiting_until),
    }


def _with_schedule(item: dict[str, Any]) -> dict[str, Any]:
    item.update(schedule_fields(item.pop("waiting_until", None)))
    for sub in item.get("subtasks", ()):
        sub.update(schedule_fields(sub.pop("waiting_until", None)))
    return item


class DevconfConsumer(AsyncConsumer):
    """/wsapi/v1/devconf_fx: commands in, answers and pushes out."""

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        # Not AsyncConsumer.__call__: it would read the channel layer in the same loop as the
        # socket, and a Redis failure there would kill the socket with 1011 and no word.
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel() if self.channel_layer else None
        self.base_send = send
        self.project: Project | None = None
        self.ctx: commands.Context | None = None
        self.lang = settings.LANGUAGE_CODE
        self.host = ""
        self.secure = False
        self.inflight: set[asyncio.Task] = set()
        self.background: set[asyncio.Task] = set()
        self.groups: set[str] = set()
        self.sub_all = False
        self.sub_tasks: set[str] = set()
        self.counts_due: set[str] = set()
        # While a subscription's snapshot is read, pushes wait here (then go out after it).
        self.holding = 0
        self.held: list[dict[str, Any]] = []
        self.closing = False
        self.outbox = Outbox(
            send,
            capacity=settings.VIAS_WS_PUSH_QUEUE,
            max_pending=settings.VIAS_WS_MAX_PENDING_BYTES,
            stall_timeout=settings.VIAS_WS_STALL_TIMEOUT,
            transport=transport_of(send),
        )
        try:
            while True:
                message = await receive()
                handler = getattr(self, message["type"].replace(".", "_"), None)
                if handler is not None:
                    await handler(message)
        except StopConsumer:
            pass
        finally:
            await self._teardown()

    # ---- socket events -------------------------------------------------------------------------

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        headers = scope_headers(self.scope)
        self.lang = language_of(headers)
        self.host = headers.get("Host", "")
        self.secure = self.scope.get("scheme") == "wss"
        with translation.override(self.lang):
            try:
                self.project, user = await in_thread(
                    authenticate, headers, scope_query(self.scope), self.scope.get("user")
                )
            except Exception as exc:  # noqa: BLE001 - every refusal is answered, never a bare 500
                body = error_answer(exc)
                await self.base_send({"type": "websocket.accept"})
                await self.outbox.answer({"push": "auth", **body})
                code = CLOSE_FORBIDDEN if body["ecode"] == 403 else CLOSE_UNAUTHORIZED
                await self._close(code)
                return
        self.ctx = commands.Context(project=self.project, user=user)
        await self.base_send({"type": "websocket.accept"})
        self._spawn(self._sender(), self.background)
        if self.channel_layer is not None:
            self._spawn(self._pump(), self.background)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        if self.ctx is None or self.closing:
            return
        text = message.get("text")
        if text is None and message.get("bytes") is not None:
            try:
                text = message["bytes"].decode("utf-8")
            except UnicodeDecodeError:
                text = None
        with translation.override(self.lang):
            raw: Any = None
            try:
                if text is None:
                    raise ProtocolError(_("send requests as JSON text"))
                if len(text) > settings.VIAS_MAX_BODY_BYTES:
                    raise ProtocolError(_("the message is too large"))
                raw = parse_text(text)
                request = parse_request(raw)
                if len(self.inflight) >= settings.VIAS_WS_MAX_IN_FLIGHT:
                    raise TooManyRequests(
                        _("too many requests in flight on this socket (at most %(n)d)")
                        % {"n": settings.VIAS_WS_MAX_IN_FLIGHT}
                    )
            except Exception as exc:  # noqa: BLE001
                await self.outbox.answer({**echo_of(raw), **error_answer(exc)})
                return
        self._spawn(self._run(request), self.inflight)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        raise StopConsumer()

    # ---- commands -------------------------------------------------------------------------------

    async def _run(self, request: Request) -> None:
        subscribing = request.resource == "subscriptions" and request.verb == "post"
        if subscribing:
            self.holding += 1  # pushes wait until the snapshot has gone out (below)
        try:
            await self._run_and_answer(request, subscribing)
        finally:
            if subscribing:
                self._release_held()

    async def _run_and_answer(self, request: Request, subscribing: bool) -> None:
        snapshot: dict[str, Any] | None = None
        with translation.override(self.lang):
            try:
                if subscribing:
                    body, snapshot = await self._subscribe(request.params)
                else:
                    body = await self._execute(request)
            except Exception as exc:  # noqa: BLE001 - answered in the envelope
                if isinstance(exc, BROKER_ERRORS):
                    await self._broker_down(exc, request.echo)
                    return
                body = error_answer(exc, rename=NativeAPIView.request_path_of)
            try:
                await self.outbox.answer({**request.echo, **body})
            except Stalled:
                await self._close(CLOSE_POLICY)
                return
            if snapshot is not None:
                self.outbox.push(snapshot)

    async def _execute(self, request: Request) -> dict[str, Any]:
        key = (request.verb, request.resource)
        if request.resource == "echo":
            return native_ok(data=request.params)
        if request.resource == "subscriptions" and request.verb in ("post", "delete"):
            return await self._subscription(request.verb, request.params)
        handler = commands.COMMANDS.get(key)
        if handler is None:
            verbs = commands.verbs_of(request.resource)
            if verbs:
                raise UnknownCommand(
                    _("%(verb)s is not a command of %(resource)s; use %(verbs)s")
                    % {"verb": request.verb, "resource": request.resource, "verbs": ", ".join(verbs)}
                )
            raise UnknownCommand(_("unknown resource %(resource)s") % {"resource": request.resource})

        ctx = self.ctx
        assert ctx is not None, "commands are read only once connected"

        def call() -> dict[str, Any]:
            with translation.override(self.lang):
                return handler(ctx, request.params)

        return await in_thread(call)

    # ---- subscriptions --------------------------------------------------------------------------

    async def _subscribe(self, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Subscribe, then read the current state of what was subscribed to: the snapshot push the
        client receives right after the answer, before any change (held meanwhile; a change
        committed while the snapshot was read arrives after it, so the newest word wins)."""
        body = await self._subscription("post", params)
        task_id = self._task_id_of(params)
        project = self.project

        def read() -> list[dict[str, Any]]:
            tasks = Task.objects.filter(project=project)
            if task_id is not None:
                tasks = tasks.filter(task_id=task_id)
            snapshot = queries.live_snapshot(tasks, with_subtasks=task_id is not None)
            return [_with_schedule(item) for item in snapshot]

        push: dict[str, Any] = {"push": "snapshot", "ecode": 200, "enote": "OK"}
        if task_id is not None:
            push["task_id"] = task_id
        push["data"] = {"all": task_id is None, "tasks": await in_thread(read)}
        return body, push

    def _release_held(self) -> None:
        self.holding -= 1
        if self.holding == 0:
            held, self.held = self.held, []
            for message in held:
                self._on_event(message)

    @staticmethod
    def _task_id_of(params: dict[str, Any]) -> str | None:
        task_id = params.get("task_id")
        if task_id in (None, "", "*"):
            return None
        if not isinstance(task_id, str) or len(task_id) > 64:
            raise serializers.ValidationError({"task_id": [_('a task_id string, or "*" for every task')]})
        return task_id

    async def _subscription(self, verb: str, params: dict[str, Any]) -> dict[str, Any]:
        """post: subscribe to `task_id` (or every task of the project when it is absent or "*");
        delete: unsubscribe from it (or from everything)."""
        task_id = self._task_id_of(params)
        project = self.project
        assert project is not None, "subscriptions are read only once connected"
        if verb == "post":
            if task_id is None:
                await self._join(project_group(project.project_id))
                for tid in list(self.sub_tasks):
                    await self._leave(task_group(tid))
                self.sub_all = True
            else:
                exists = await in_thread(
                    lambda: Task.objects.for_project(project).filter(task_id=task_id).exists()
                )
                if not exists:
                    raise NotFound(_("no task %(id)s") % {"id": task_id}, field="task_id")
                if not self.sub_all:
                    await self._join(task_group(task_id))
                self.sub_tasks.add(task_id)
        elif task_id is None:
            for group in list(self.groups):
                await self._leave(group)
            self.sub_all = False
            self.sub_tasks.clear()
        else:
            self.sub_tasks.discard(task_id)
            await self._leave(task_group(task_id))
        return native_ok(data=self._subscribed())

    def _subscribed(self) -> dict[str, Any]:
        return {"all": self.sub_all, "task_ids": sorted(self.sub_tasks)}

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups.add(group)

    async def _leave(self, group: str) -> None:
        if group in self.groups:
            self.groups.discard(group)
            await self.channel_layer.group_discard(group, self.channel_name)

    # ---- pushes -------------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Read this socket's channel-layer messages; a Redis failure closes the socket (1012)."""
        while True:
            try:
                message = await self.channel_layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever Redis raised, the socket is told
                await self._broker_down(exc, {})
                return
            if message.get("type") == "vias.event":
                self._on_event(message)

    def _on_event(self, message: dict[str, Any]) -> None:
        if self.project is None or message.get("project_id") != self.project.project_id:
            return  # never another project's news, whatever group it came through
        if self.holding:
            if len(self.held) < self.outbox.capacity:
                self.held.append(message)
            else:  # as the outbox would: the client is told how many were dropped
                self.outbox.dropped += 1
                self.outbox.dropped_total += 1
            return
        task_id = message.get("task_id")
        if not self.sub_all and task_id not in self.sub_tasks:
            return
        data = {k: v for k, v in message.items() if k not in ("type", "kind", "project_id", "task_id")}
        if "waiting_until" in data:  # "subtask.schedule": in the snapshot's (the native API's) words
            data.update(schedule_fields(data.pop("waiting_until")))
        for name in ("snapshot_url", "clip_url"):  # an event's files, as absolute URLs
            link = data.get(name)
            if isinstance(link, str) and link.startswith("/") and self.host:
                data[name] = f"{'https' if self.secure else 'http'}://{self.host}{link}"
        push: dict[str, Any] = {"push": message.get("kind", ""), "ecode": 200, "enote": "OK"}
        if task_id:
            push["task_id"] = task_id
        push["data"] = data
        self.outbox.push(push)
        if task_id and message.get("kind") in COUNTS_KINDS and task_id not in self.counts_due:
            self.counts_due.add(task_id)
            self._spawn(self._push_counts(task_id), self.background)

    async def _push_counts(self, task_id: str) -> None:
        """A "task.state" push: the task's derived state and per-state counts, debounced."""
        try:
            await asyncio.sleep(COUNTS_DEBOUNCE)
            self.counts_due.discard(task_id)
            counts = await TaskCounts.get(task_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a lost counts push must not end the socket
            log.warning("could not read the state counts of task %s", task_id, exc_info=True)
            return
        if counts is not None:
            self.outbox.push(
                {"push": "task.state", "ecode": 200, "enote": "OK", "task_id": task_id, "data": counts}
            )

    async def _sender(self) -> None:
        try:
            await self.outbox.run()
        except Stalled:
            log.info("closing a websocket whose client left %d bytes unread", self.outbox.max_pending)
            await self._close(CLOSE_POLICY)

    # ---- failures and the end -----------------------------------------------------------------

    async def _broker_down(self, exc: BaseException, echo: dict[str, Any]) -> None:
        if self.closing:
            return
        log.warning("websocket: Redis unavailable (%s: %s); closing with 1012", type(exc).__name__, exc)
        with translation.override(self.lang):
            body = error_answer(
                BrokerUnavailable(_("the message broker (Redis) is unavailable; reconnect in a few seconds"))
            )
        with contextlib.suppress(Stalled):
            await self.outbox.answer({**echo, **({} if echo else {"push": "unavailable"}), **body})
        self.groups.clear()  # nothing to discard from a Redis that is gone; the groups expire
        await self._close(CLOSE_SERVICE_RESTART)

    async def _close(self, code: int) -> None:
        if self.closing:
            return
        self.closing = True
        await self.base_send({"type": "websocket.close", "code": code})

    def _spawn(self, coroutine, into: set[asyncio.Task]) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        into.add(task)
        task.add_done_callback(into.discard)
        return task

    async def _teardown(self) -> None:
        tasks = [*self.inflight, *self.background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.groups and self.channel_layer is not None:
            try:
                async with asyncio.timeout(2):
                    for group in list(self.groups):
                        await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # noqa: BLE001 - the groups expire on their own (group_expiry)
                pass
            self.groups.clear()
