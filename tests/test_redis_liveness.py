"""Redis liveness with real nodes (issue 14): a node whose Redis access is cut while its database
stays reachable takes no new work, and its running subtask moves to the other node; healed, it
takes work again. The cut is real: node B reaches Redis only through a loopback TCP proxy that
the test closes (connections reset, new ones refused)."""

from __future__ import annotations

import contextlib
import socket
import threading
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from analysis import dispatch
from analysis.models import Event
from subtasks.choices import State
from subtasks.models import Node, Subtask
from tests.nodes import long_video, wait_for
from tests.test_nodes import fetch, started_task

pytestmark = pytest.mark.django_db(transaction=True)


class RedisProxy:
    """127.0.0.1:<port> → the test Redis (TCP or unix socket); cut() closes every connection and
    stops listening, heal() listens again on the same port."""

    def __init__(self, redis_url: str) -> None:
        params = redis.connection.parse_url(redis_url)
        self.upstream: tuple | str = params.get("path") or (
            params.get("host", "localhost"),
            params.get("port", 6379),
        )
        self.db = params.get("db", 0)
        self.port = 0
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.db}"

    def __enter__(self) -> RedisProxy:
        self.heal()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()

    def heal(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            if self.listener is not None:
                self.listener.close()
                self.listener = None
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = socket.socket(socket.AF_UNIX) if isinstance(self.upstream, str) else socket.socket()
            server.connect(self.upstream)
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    server.close()
                    return
                self.open += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def test_a_node_cut_from_redis_gets_no_new_work_and_its_subtask_moves_to_the_other_node(
    alice, store, node_process, settings
):
    settings.VIAS_NODE_TIMEOUT = 10  # as the nodes' own (tests/nodes.py): dispatch here decides too
    settings.VIAS_HEARTBEAT_GRACE = 3
    # Long enough to outlast the cut's detection (the tiny model analyses ~150 frames a second).
    long_video(store / "longer.mp4", loops=48)
    with RedisProxy(settings.REDIS_URL) as proxy:
        # The default heartbeat timeout: the nodes batch their jobs' beats (tests/test_beats.py);
        # a job cut from Redis writes its own.
        cut = node_process(capacity=2, heartbeat_timeout=30, REDIS_URL=proxy.url)
        other = node_process(capacity=1, heartbeat_timeout=30)
        _task, subtask = started_task(alice, "longer.mp4", fps=25)
        assert fetch(subtask).node.name == cut.name  # the most free slots
        wait_for(
            lambda: fetch(subtask).state == State.RUNNING and fetch(subtask).progress > 0,
            timeout=90,
            what=lambda: f"the subtask running on the node to be cut\n{cut.output()}",
        )
        proxy.cut()
        moved = wait_for(
            lambda: (row := fetch(subtask)).node is not None and row.node.name == other.name and row,
            timeout=90,
            what=lambda: (
                f"the subtask on {other.name}\n{Subtask.objects.filter(pk=subtask.pk).values().first()}\n"
                f"{list(Node.objects.values('name', 'last_heartbeat', 'redis_ack_at'))}\n{other.output()[-3000:]}"
            ),
        )
        # It moved because the node lost Redis, not because it died: it still heartbeats.
        node_b = Node.objects.get(name=cut.name)
        assert cut.process.poll() is None
        assert node_b.last_heartbeat > timezone.now() - timedelta(seconds=settings.VIAS_NODE_TIMEOUT)
        assert node_b.redis_ack_at < timezone.now() - timedelta(seconds=settings.VIAS_NODE_TIMEOUT)
        assert moved.attempts == 2

        # New work does not go to the cut node, though it has two free slots and the other none.
        _second_task, second = started_task(alice, "longer.mp4", fps=25)
        waiting = fetch(second)
        assert waiting.node is None and waiting.status_reason == dispatch.WAITING_REASON

        proxy.heal()  # back: it acknowledges again and takes the waiting subtask
        wait_for(
            lambda: (row := fetch(second)).node is not None and row.node.name == cut.name,
            timeout=90,
            what=lambda: f"the waiting subtask on the healed node\n{cut.output()[-3000:]}",
        )
        wait_for(
            lambda: fetch(subtask).state in (State.SUCCEEDED, State.FAILED),
            timeout=240,
            what="the first's end",
        )
    done = fetch(subtask)
    other_id = Node.objects.get(name=other.name).pk
    assert (done.state, done.node_id, done.attempts) == (State.SUCCEEDED, other_id, 2), done.status_reason
    keys = list(Event.objects.filter(subtask=subtask).values_list("key", flat=True))
    assert len(keys) == len(set(keys))
    assert Subtask.objects.get(pk=second.pk).state in (State.STARTING, State.RUNNING, State.SUCCEEDED)
