"""Several subtasks in one worker process, so that concurrent subtasks on one GPU share one
onnxruntime session per model and have their frames batched together.

How many is `per_worker()`: `VIAS_SUBTASKS_PER_WORKER` when set; otherwise the hardware decides:
with a usable GPU provider, the node's whole capacity (one process per GPU hosts every subtask,
so 16 or 32 streams form one batch and share one CUDA context); on a CPU, 1 (one subtask per
django-q2 worker process, where batching buys nothing). With N > 1, a worker that picks up a subtask's job
becomes a *host*: it runs that subtask in a thread and advertises N - 1 free slots in Redis.
Dispatch to that node then hands further subtasks to the host (an atomic Lua script reserves a
slot and queues the job on the host's own list) instead of the node's django-q2 queue; when no
host has a free slot, the job goes to the queue as usual and another worker becomes a host.
Every subtask keeps its own heartbeat, control inbox and state, so the reaper, stops and node
draining work exactly as for one subtask per process. A host that ends gives back whatever it
had not started yet to the node's queue.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from django.conf import settings
from django.db import connection
from django_q.brokers import get_broker
from django_q.tasks import async_task

from analysis import control

log = logging.getLogger(__name__)

# Reserve a slot on a host (if it still has one) and queue the job on its list, atomically.
ADOPT = """
local free = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if free > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
  redis.call('RPUSH', KEYS[2], ARGV[2])
  return 1
end
return 0
"""
# Free slots = what the host can still run minus the jobs waiting on its list, atomically.
ADVERTISE = """
local pending = redis.call('LLEN', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], tonumber(ARGV[2]) - pending)
return 1
"""
POLL_SECONDS = 0.5

_batchers: dict[tuple[str, frozenset[str]], Any] = {}
_batchers_lock = threading.Lock()


def per_worker() -> int:
    configured = int(settings.VIAS_SUBTASKS_PER_WORKER)
    if configured > 0:
        return configured
    from analysis.detect.gpu import on_gpu
    from analysis.detect.providers import usable_providers

    if not on_gpu(usable_providers()):
        return 1
    try:  # the node command tells its workers the node's capacity
        return max(1, int(os.environ.get("VIAS_NODE_CAPACITY", "")))
    except ValueError:
        from analysis.detect.runtime import MAX_BATCH

        return MAX_BATCH


def _hosts_key(node_name: str) -> str:
    return f"{settings.VIAS_CONTROL_PREFIX}:hosts:{node_name}"


def _adopt_key(node_name: str, pid: int | str) -> str:
    return f"{settings.VIAS_CONTROL_PREFIX}:adopt:{node_name}:{pid}"


def shared_detectors(categories: Iterable[str]) -> list[Any]:
    """The detectors for these categories; with hosting on, one BatchingDetector per model per
    process, shared by every subtask the process runs (cross-subtask batches, one session)."""
    from analysis.detect.registry import detectors_for
    from analysis.detect.runtime import BatchingDetector

    detectors = detectors_for(categories)
    if per_worker() <= 1:
        return detectors
    shared = []
    with _batchers_lock:
        for detector in detectors:
            key = (detector.name, frozenset(detector.categories))
            if key not in _batchers:
                _batchers[key] = BatchingDetector(detector)
            shared.append(_batchers[key])
    return shared


def try_adopt(subtask_id: int, node_name: str, resume_frame: int) -> bool:
    """Hand a job to a host on `node_name` with a free slot; False when none has one. (The node's
    own setting decides whether it hosts; the dispatcher only looks for advertised slots.)"""
    redis_client = control.client()
    job = json.dumps([subtask_id, node_name, resume_frame])
    for raw_pid in redis_client.hkeys(_hosts_key(node_name)):
        pid = cast(bytes, raw_pid).decode()  # the client answers bytes
        keys = [_hosts_key(node_name), _adopt_key(node_name, pid)]
        if redis_client.eval(ADOPT, 2, *keys, pid, job):
            return True
    return False


def host(first: tuple[int, str, int], run_one: Callable[[int, str, int], str]) -> str:
    """Run `first` and every job adopted meanwhile, each in its own thread, until all are done."""
    subtask_id, node_name, _ = first
    pid = str(os.getpid())
    redis_client = control.client()
    keys = [_hosts_key(node_name), _adopt_key(node_name, pid)]
    results: list[str] = []
    # Advertised before the first subtask runs: a dispatch that sees it running finds the slots.
    redis_client.eval(ADVERTISE, 2, *keys, pid, per_worker() - 1)
    threads = [_start(first, run_one, results)]
    try:
        while threads:
            redis_client.eval(ADVERTISE, 2, *keys, pid, per_worker() - len(threads))
            popped = redis_client.blpop([keys[1]], timeout=POLL_SECONDS)
            if popped is not None:
                threads.append(_start(tuple(json.loads(popped[1])), run_one, results))
            threads = [thread for thread in threads if thread.is_alive()]
    finally:
        redis_client.hdel(keys[0], pid)
        _give_back(redis_client, keys[1])
    return f"hosted {len(results)} subtasks: " + "; ".join(results)


def _start(job: tuple, run_one: Callable[[int, str, int], str], results: list[str]) -> threading.Thread:
    def work() -> None:
        try:
            results.append(f"{job[0]}: {run_one(*job)}")
        except Exception:  # noqa: BLE001 - one subtask's crash must not end the others
            log.exception("hosted subtask %s crashed", job[0])
        finally:
            connection.close()  # each thread has its own database connection

    thread = threading.Thread(target=work, name=f"subtask-{job[0]}", daemon=True)
    thread.start()
    return thread


def _give_back(redis_client, adopt_key: str) -> None:
    """Jobs queued on this host after it stopped looking: back to their node's queue."""
    while (item := redis_client.lpop(adopt_key)) is not None:
        subtask_id, node_name, resume_frame = json.loads(item)
        enqueue_to_queue(subtask_id, node_name, resume_frame)


_brokers: dict[tuple[str, str], Any] = {}


def node_broker(node_name: str) -> Any:
    """The django-q2 broker of a node's queue, kept: a fresh one per job would open a new Redis
    connection (connect and handshake) on every dispatch. (redis-py's pool is thread-safe and
    starts afresh in a forked process.)"""
    key = (settings.REDIS_URL, node_name)
    broker = _brokers.get(key)
    if broker is None:
        broker = _brokers[key] = get_broker(node_name)
    return broker


def enqueue_to_queue(subtask_id: int, node_name: str, resume_frame: int = 0, broker: Any = None) -> None:
    """Onto the node's own django-q2 queue, for whichever of its workers is free first."""
    async_task(
        "analysis.jobs.run_subtask",
        subtask_id,
        node_name,
        resume_frame,
        broker=broker or node_broker(node_name),
        task_name=f"subtask-{subtask_id}",
        timeout=settings.Q_CLUSTER["timeout"],
    )


class _PipelinedQueue:
    """A node's queue as `async_task` sees a broker (it reads `list_key` and calls `enqueue`),
    whose RPUSH goes into a Redis pipeline: a batch of jobs is sent in one round trip."""

    def __init__(self, list_key: str, pipeline: Any) -> None:
        self.list_key = list_key
        self._pipeline = pipeline

    def enqueue(self, pack: str) -> None:
        self._pipeline.rpush(self.list_key, pack)


def enqueue_many(jobs: list[tuple[int, str]]) -> None:
    """(subtask, node name) jobs from the start: to a host with a free slot where its node has
    hosts (GPU nodes), the rest onto their nodes' queues; one round trip to look for hosts and
    one for the queues, whatever the number of jobs."""
    node_names = list(dict.fromkeys(name for _pk, name in jobs))
    looking = control.client().pipeline(transaction=False)
    for name in node_names:
        looking.hkeys(_hosts_key(name))
    hosting = {name for name, hosts in zip(node_names, looking.execute(), strict=True) if hosts}
    queued = [(pk, name) for pk, name in jobs if name not in hosting or not try_adopt(pk, name, 0)]
    if not queued:
        return
    pipeline = node_broker(queued[0][1]).connection.pipeline(transaction=False)
    for pk, name in queued:
        enqueue_to_queue(pk, name, broker=_PipelinedQueue(node_broker(name).list_key, pipeline))
    pipeline.execute()
