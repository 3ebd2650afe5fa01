"""The operator's console pages inside the admin (docs/admin.md, "Console"): the live view of a
subtask, its per-camera figures, the table of running cameras, the System page and the dashboard
on the admin's index. Every view is the admin site's (`admin_view`: staff login) and shows only
the rows of the user's projects (tenancy's `visible_to`); nodes are shared by every project.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from analysis import live, sysstats
from analysis.labels import rule_label
from analysis.models import CameraStats, Event
from subtasks.choices import ACTIVE_STATES, State
from subtasks.models import Node, Subtask

RUNNING_STATES = (State.RUNNING, State.ABNORMAL, State.RECOVERING, State.STOPPING)
FAILING_STATES = (State.FAILED, State.ABNORMAL)
RECENT_FAILURES = timedelta(days=1)


def _subtask(request: HttpRequest, subtask_id: int) -> Subtask:
    subtask = Subtask.objects.visible_to(request.user).filter(pk=subtask_id).first()
    if subtask is None:
        raise Http404
    return subtask


# -- the live view and the figures of one camera ------------------------------------------------------


def live_frame(request: HttpRequest, subtask_id: int) -> HttpResponse:
    """The latest annotated JPEG of a running subtask; asking for it is what makes the node draw.
    204 until the node has published one (it looks for viewers once a second)."""
    _subtask(request, subtask_id)
    jpeg = live.watch(subtask_id)
    response = HttpResponse(jpeg, content_type="image/jpeg") if jpeg else HttpResponse(status=204)
    response["Cache-Control"] = "no-store"
    return response


def camera_figures(stats: CameraStats | None) -> list[tuple[str, str]]:
    """(label, value) rows of a subtask's figures, as the subtask page and the JSON show them."""
    if stats is None:
        return [(_("figures"), _("not run yet"))]
    return [
        (_("frames decoded / analysed"), f"{stats.frames_decoded} / {stats.frames_analysed}"),
        (_("analysed fps / source fps"), f"{stats.analysed_fps:.1f} / {stats.source_fps:.1f}"),
        (
            _("detections"),
            _("%(n)d (%(rate).1f a minute)") % {"n": stats.detections, "rate": stats.detections_per_minute},
        ),
        (_("inference"), f"{stats.inference_ms:.1f} ms"),
        (_("events"), str(stats.events)),
        (_("reconnects"), str(stats.reconnects)),
        (_("last frame"), _ago(stats.last_frame_at)),
        (_("node / provider"), f"{stats.node_name or '—'} / {stats.provider or '—'}"),
    ]


def saw_nothing_note(stats: CameraStats | None) -> str:
    if stats is None or not stats.saw_nothing:
        return ""
    return _(
        "%(n)d frames analysed and not one detection: check the detector models, the ROI and the picture."
    ) % {"n": stats.frames_analysed}


def camera_context(subtask: Subtask) -> dict[str, Any]:
    """The live view and figures panel of a subtask's page."""
    stats = CameraStats.objects.filter(subtask=subtask).first()
    return {
        "camera_figures": camera_figures(stats),
        "saw_nothing": saw_nothing_note(stats),
        "live_url": reverse("admin:console_live", args=[subtask.pk]),
        "figures_url": reverse("admin:console_camera", args=[subtask.pk]),
        "running": subtask.state in RUNNING_STATES,
    }


def camera_json(request: HttpRequest, subtask_id: int) -> JsonResponse:
    subtask = _subtask(request, subtask_id)
    stats = CameraStats.objects.filter(subtask=subtask).first()
    return JsonResponse(
        {
            "state": subtask.state,
            "rows": camera_figures(stats),
            "note": saw_nothing_note(stats),
            "frames_analysed": stats.frames_analysed if stats else 0,
        }
    )


def _ago(moment) -> str:
    if moment is None:
        return "—"
    seconds = max(0, round((timezone.now() - moment).total_seconds()))
    return (
        _("%(s)d s ago") % {"s": seconds}
        if seconds < 120
        else date_format(timezone.localtime(moment), "DATETIME_FORMAT")
    )


# -- the pages -----------------------------------------------------------------------------------------


def running_cameras(user) -> list[dict[str, Any]]:
    subtasks = (
        Subtask.objects.visible_to(user)
        .filter(state__in=RUNNING_STATES)
        .select_related("task", "node", "video_channel", "camera_stats")
        .order_by("task__task_name", "position")
    )
    return [
        {
            "subtask": subtask,
            "stats": getattr(subtask, "camera_stats", None),
            "url": reverse("admin:subtasks_subtask_change", args=[subtask.pk]),
            "source": str(subtask.video_channel) if subtask.video_channel_id else subtask.source_url,
        }
        for subtask in subtasks
    ]


def cameras(request: HttpRequest) -> TemplateResponse:
    context = {
        **admin.site.each_context(request),
        "title": _("Running cameras"),
        "cameras": running_cameras(request.user),
    }
    return TemplateResponse(request, "admin/console/cameras.html", context)


def recent_failures(user, limit: int = 20) -> list[Subtask]:
    since = timezone.now() - RECENT_FAILURES
    return list(
        Subtask.objects.visible_to(user)
        .filter(state__in=FAILING_STATES, updated_at__gte=since)
        .select_related("task", "node")
        .order_by("-updated_at")[:limit]
    )


def system(request: HttpRequest) -> TemplateResponse:
    nodes = list(Node.objects.annotate(busy=Count("subtasks", filter=Q(subtasks__state__in=ACTIVE_STATES))))
    names = [node.name for node in nodes]
    samples, depths = sysstats.read(names), sysstats.queue_depths(names)
    cutoff = timezone.now() - timedelta(seconds=settings.VIAS_NODE_TIMEOUT)
    held = Subtask.objects.visible_to(request.user).filter(state__in=ACTIVE_STATES, node__isnull=False)
    per_node: dict[int, list[Subtask]] = {}
    for subtask in held.select_related("task").order_by("pk"):
        per_node.setdefault(subtask.node_id, []).append(subtask)
    rows = [
        {
            "node": node,
            "alive": node.last_heartbeat is not None and node.last_heartbeat >= cutoff,
            "sample": samples.get(node.name),
            "queue": depths.get(node.name),
            "subtasks": per_node.get(node.pk, []),
            "providers": ", ".join(map(str, (node.capabilities or {}).get("providers", []))) or "—",
        }
        for node in nodes
    ]
    waiting = Subtask.objects.visible_to(request.user).filter(
        state__in=(State.STARTING, State.RECOVERING), node__isnull=True
    )
    context = {
        **admin.site.each_context(request),
        "title": _("System"),
        "rows": rows,
        "waiting": waiting.count(),
        "failures": recent_failures(request.user),
    }
    return TemplateResponse(request, "admin/console/system.html", context)


def dashboard(request: HttpRequest) -> dict[str, Any]:
    """What the admin's index shows above the list of models."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    events = Event.objects.visible_to(request.user).filter(occurred_at__gte=today)
    by_rule = events.order_by().values_list("rule").annotate(n=Count("pk")).order_by("-n")
    return {
        "cameras": running_cameras(request.user),
        "events_today": events.count(),
        "events_by_rule": [(rule_label(rule), n) for rule, n in by_rule],
        "latest_events": list(events.select_related("task").order_by("-occurred_at", "-pk")[:8]),
        "failures": recent_failures(request.user, limit=8),
    }


def urls() -> list:
    """The console's pages, added to the admin site's own (vias/admin_site.py): names admin:console_*."""
    wrap = admin.site.admin_view
    return [
        path("console/live/<int:subtask_id>.jpg", wrap(live_frame), name="console_live"),
        path("console/camera/<int:subtask_id>.json", wrap(camera_json), name="console_camera"),
        path("console/cameras/", wrap(cameras), name="console_cameras"),
        path("console/system/", wrap(system), name="console_system"),
    ]


# -- a task's page: live views of its running subtasks, the review timeline --------------------------

TIMELINE_EVENTS = 60
TIMELINE_WIDTH_PX = 1300  # .vias-timeline's max width: where thumbnails would overlap
THUMB_PX = 80
LANES = 3


def live_views(task) -> list[dict[str, Any]]:
    running = (
        task.subtasks.filter(state__in=RUNNING_STATES).select_related("video_channel").order_by("position")
    )
    return [
        {
            "subtask": subtask,
            "url": reverse("admin:console_live", args=[subtask.pk]),
            "page": reverse("admin:subtasks_subtask_change", args=[subtask.pk]),
            "source": str(subtask.video_channel) if subtask.video_channel_id else subtask.source_url,
        }
        for subtask in running
    ]


def review_timeline(events, task) -> dict[str, Any]:
    """The task's latest events on a time axis, each a thumbnail linking to its page (clip, snapshot).
    Thumbnails that would overlap go to the next lane up."""
    latest = list(events.order_by("-occurred_at", "-pk")[:TIMELINE_EVENTS])[::-1]
    if not latest:
        return {"items": [], "total": 0}
    first, last = latest[0].occurred_at, latest[-1].occurred_at
    span = max((last - first).total_seconds(), 1.0)
    lane_ends = [-1e9] * LANES
    items = []
    for event in latest:
        share = (event.occurred_at - first).total_seconds() / span
        x = share * TIMELINE_WIDTH_PX
        lane = next((i for i, end in enumerate(lane_ends) if x - end >= THUMB_PX), 0)
        lane_ends[lane] = x
        items.append(
            {
                "event": event,
                "left": f"{4 + share * 92:.2f}",
                "bottom": lane * 38,
                "label": rule_label(event.rule),
                "url": reverse("admin:analysis_event_change", args=[event.pk]),
                "thumb": reverse("admin:analysis_event_snapshot", args=[event.pk]) if event.snapshot else "",
            }
        )
    return {"items": items, "total": events.count(), "first": first, "last": last}
