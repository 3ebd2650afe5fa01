"""Operations endpoints: /metrics (Prometheus text format), /healthz and /readyz.

The nodes are separate processes, so nothing is counted in this process's memory: every series
is computed at scrape time from what the nodes write (CameraStats rows once a second, Node
heartbeats, Events, Deliveries) and from the django-q2 queues in Redis. Any web process answers
the same numbers. A handful of aggregate queries per scrape, whatever the number of events.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import timedelta

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from analysis import sysstats
from analysis.models import CameraStats, Delivery, Event
from subtasks.choices import State
from subtasks.models import Node, Subtask

ACTIVE_STATES = (State.RUNNING, State.ABNORMAL, State.RECOVERING, State.STOPPING)
READY_TIMEOUT_S = 2.0


class VIASCollector:
    """Every VIAS series, read from the database and Redis when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        yield from self._nodes()
        yield from self._subtasks()
        yield from self._cameras()
        yield from self._events()
        yield from self._deliveries()
        yield from self._queues()

    def _nodes(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("vias_node_up", "1 while the node heartbeats", labels=["node"])
        capacity = GaugeMetricFamily("vias_node_capacity", "subtasks the node runs at once", labels=["node"])
        running = GaugeMetricFamily("vias_node_subtasks", "subtasks the node holds now", labels=["node"])
        cutoff = timezone.now() - timedelta(seconds=settings.VIAS_NODE_TIMEOUT)
        nodes = Node.objects.annotate(busy=Count("subtasks", filter=_active("subtasks__")))
        for node in nodes:
            live = node.last_heartbeat is not None and node.last_heartbeat >= cutoff
            up.add_metric([node.name], 1.0 if live and not node.draining else 0.0)
            capacity.add_metric([node.name], node.capacity)
            running.add_metric([node.name], node.busy)
        yield from (up, capacity, running)

    def _subtasks(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("vias_subtasks", "subtasks by state", labels=["state"])
        counts = dict(Subtask.objects.values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
        for state in State.values:
            by_state.add_metric([state], counts.get(state, 0))
        yield by_state

    def _cameras(self) -> Iterator[Metric]:
        labels = ["subtask", "task", "node"]
        gauges = {
            "analysed_fps": GaugeMetricFamily(
                "vias_subtask_analysed_fps", "frames analysed per second", labels=labels
            ),
            "source_fps": GaugeMetricFamily(
                "vias_subtask_source_fps", "the source's own frame rate", labels=labels
            ),
            "inference_ms": GaugeMetricFamily(
                "vias_subtask_inference_ms", "mean inference time per analysed frame", labels=labels
            ),
        }
        counters = {
            "frames_decoded": CounterMetricFamily(
                "vias_subtask_frames_decoded", "frames read", labels=labels
            ),
            "frames_analysed": CounterMetricFamily(
                "vias_subtask_frames_analysed", "frames analysed", labels=labels
            ),
            "detections": CounterMetricFamily("vias_subtask_detections", "detections", labels=labels),
            "events": CounterMetricFamily("vias_subtask_events", "events stored", labels=labels),
            "reconnects": CounterMetricFamily("vias_subtask_reconnects", "stream reconnects", labels=labels),
            "inference_seconds": CounterMetricFamily(
                "vias_subtask_inference_seconds", "time spent in the detectors", labels=labels
            ),
        }
        # Only subtasks that run now: a finished one's series would grow the scrape for ever.
        rows = CameraStats.objects.filter(subtask__state__in=ACTIVE_STATES).values(
            "subtask_id", "subtask__task__task_id", "node_name", *gauges, *counters
        )
        for row in rows:
            values = [str(row["subtask_id"]), row["subtask__task__task_id"], row["node_name"]]
            for name, family in (gauges | counters).items():
                family.add_metric(values, row[name])
        yield from gauges.values()
        yield from counters.values()

    def _events(self) -> Iterator[Metric]:
        family = CounterMetricFamily("vias_events", "events stored, by rule", labels=["rule"])
        for rule, count in Event.objects.values_list("rule").annotate(n=Count("pk")).values_list("rule", "n"):
            family.add_metric([rule], count)
        yield family

    def _deliveries(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "vias_deliveries", "delivery attempts, by output and outcome", labels=["output", "outcome"]
        )
        rows = (
            Delivery.objects.values_list("output", "ok")
            .annotate(n=Count("pk"))
            .values_list("output", "ok", "n")
        )
        for output, ok, count in rows:
            family.add_metric([output, "ok" if ok else "failed"], count)
        yield family

    def _queues(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "vias_queue_depth", "jobs waiting on a node's django-q2 queue", labels=["queue"]
        )
        waiting = GaugeMetricFamily("vias_subtasks_waiting_for_node", "subtasks no node has taken yet")
        waiting.add_metric(
            [],
            Subtask.objects.filter(state__in=(State.STARTING, State.RECOVERING), node__isnull=True).count(),
        )
        for name, depth in sysstats.queue_depths(list(Node.objects.values_list("name", flat=True))).items():
            family.add_metric([name], depth)
        yield from (family, waiting)


def _active(prefix: str):
    from django.db.models import Q

    return Q(**{f"{prefix}state__in": ACTIVE_STATES})


def _authorised(request: HttpRequest) -> bool:
    token = settings.VIAS_METRICS_TOKEN
    if not token:
        return True
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.encode())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _authorised(request):
        return HttpResponse("unauthorised\n", status=401, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(VIASCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers: nothing else is checked (a liveness probe)."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """The database and Redis both answer (a readiness probe): 200, else 503 saying which failed."""
    checks = {"database": _check_database(), "redis": _check_redis()}
    ready = all(result == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
        return f"{type(exc).__name__}: {exc}"[:300]
    return "ok"


def _check_redis() -> str:
    # A client of its own with short timeouts: the shared one waits 30 s on a dead server.
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=READY_TIMEOUT_S, socket_connect_timeout=READY_TIMEOUT_S
    )
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
        return f"{type(exc).__name__}: {exc}"[:300]
    finally:
        client.close()
    return "ok"
