"""The websocket command table: `(verb, resource) -> handler`.

Each handler is the websocket twin of a native HTTP view: it parses `params` with the same
serializer (tasks/api/serializers.py), calls the same service function and shapes the answer
with the same `*_out` functions, so the body is the HTTP body. Handlers are plain synchronous
functions; the consumer runs each in a worker thread (they touch the database and may wait for
device acknowledgements). Subscriptions and echo live in the consumer: they need no database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import serializers

from analysis.dispatch import node_is_live
from subtasks import services as subtask_services
from subtasks.choices import ACTIVE_STATES
from subtasks.models import Node, Subtask
from tasks import queries, services
from tasks.api import serializers as s
from tasks.models import Project, StoreConf, Task, VideoChannel
from vias.lib.api import unstorable
from vias.lib.envelopes import NATIVE, error_body, native_ok
from vias.lib.errors import NotFound

Body = dict[str, Any]
Handler = Callable[["Context", dict[str, Any]], Body]


@dataclass(frozen=True)
class Context:
    """Who is asking: the socket's project and user (fixed when it connected)."""

    project: Project
    user: Any = None


S = TypeVar("S", bound=serializers.Serializer)
COMMANDS: dict[tuple[str, str], Handler] = {}


def command(verb: str, resource: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[(verb, resource)] = handler
        return handler

    return register


def verbs_of(resource: str) -> list[str]:
    return sorted(verb for verb, res in COMMANDS if res == resource)


def parse(serializer_class: type[S], params: dict[str, Any]) -> S:
    """What NativeAPIView.parse does for an HTTP body, for `params`."""
    if problem := unstorable(params):
        raise serializers.ValidationError({problem[0]: [problem[1]]})
    serializer = serializer_class(data=params)
    serializer.is_valid(raise_exception=True)
    return serializer


class TaskRef(serializers.Serializer):
    task_id = serializers.CharField(max_length=64)


class SubtaskRef(serializers.Serializer):
    subtask_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class StoreConfRef(serializers.Serializer):
    unid = serializers.CharField(max_length=64)


class VchanRef(serializers.Serializer):
    vchan_refid = serializers.CharField(max_length=64)


class PicTaskConfigIn(TaskRef, s.PicTaskConfigIn):
    """The HTTP body of POST /tasks/{task_id}/pic_task_config, plus the task's id."""


def _has(params: dict[str, Any], key: str) -> bool:
    return params.get(key) not in (None, "")


def _page(total: int, offset: int, items: list[dict[str, Any]]) -> Body:
    return native_ok(total_num=total, offset=offset, list_size=len(items), list_data=items)


def ack_body(acks: list, *, refusal_fails: bool, **data: Any) -> Body:
    """The answer of a command that reached running subtasks: one outcome per subtask.

    200 when every subtask acknowledged (or was not running: "applied"); 504 when some did not
    answer in time; 502 when some refused and a refusal means failure for this command.
    """
    outcomes = [ack.as_dict() for ack in acks]
    late = [ack for ack in acks if ack.status == "timeout"]
    refused = [ack for ack in acks if ack.status == "refused"]
    if late:
        body = error_body(
            NATIVE,
            504,
            _("%(n)d of %(total)d subtasks did not acknowledge within the timeout")
            % {"n": len(late), "total": len(acks)},
        )
    elif refused and refusal_fails:
        body = error_body(
            NATIVE,
            502,
            _("%(n)d of %(total)d subtasks refused: %(reason)s")
            % {"n": len(refused), "total": len(acks), "reason": refused[0].reason},
        )
    else:
        body = native_ok()
    return {**body, **data, "subtasks": outcomes}


# ---- tasks ------------------------------------------------------------------------------------


def _task_doc(project: Project, task_id: str) -> dict[str, Any]:
    rows = queries.task_documents(Task.objects.for_project(project).filter(task_id=task_id))
    if not rows:
        raise NotFound(_("no task %(id)s") % {"id": task_id}, field="task_id")
    return s.task_out(rows[0])


@command("get", "tasks")
def get_tasks(ctx: Context, params: dict[str, Any]) -> Body:
    """One task with `task_id`, else a page (`offset`, `limit`), newest first."""
    if _has(params, "task_id"):
        return native_ok(data=_task_doc(ctx.project, parse(TaskRef, params).validated_data["task_id"]))
    page = parse(s.PageIn, params).validated_data
    offset, limit = page["offset"], page["limit"]
    tasks = Task.objects.for_project(ctx.project)
    rows = queries.task_documents(tasks.order_by("-create_dt", "task_id")[offset : offset + limit])
    return _page(tasks.count(), offset, [s.task_out(row) for row in rows])


@command("post", "tasks")
def post_tasks(ctx: Context, params: dict[str, Any]) -> Body:
    task = services.create_task(ctx.project, parse(s.TaskIn, params).to_spec())
    return native_ok(data=_task_doc(ctx.project, task.task_id))


@command("put", "tasks")
def put_tasks(ctx: Context, params: dict[str, Any]) -> Body:
    task = services.get_task(ctx.project, parse(TaskRef, params).validated_data["task_id"])
    task, acks = services.update_task_live(task, parse(s.TaskUpdateIn, params).to_spec())
    return ack_body(acks, refusal_fails=True, data=_task_doc(ctx.project, task.task_id))


@command("delete", "tasks")
def delete_tasks(ctx: Context, params: dict[str, Any]) -> Body:
    """The seed's 20.1: refused (409) while the task has subtasks."""
    services.delete_task(services.get_task(ctx.project, parse(TaskRef, params).validated_data["task_id"]))
    return native_ok()


@command("post", "tasks/start")
def start_task(ctx: Context, params: dict[str, Any]) -> Body:
    task = services.get_task(ctx.project, parse(TaskRef, params).validated_data["task_id"])
    return native_ok(subtasks=[o.as_dict() for o in subtask_services.start_task(task)])


@command("post", "tasks/stop")
def stop_task(ctx: Context, params: dict[str, Any]) -> Body:
    task = services.get_task(ctx.project, parse(TaskRef, params).validated_data["task_id"])
    return native_ok(subtasks=[o.as_dict() for o in subtask_services.stop_task(task)])


@command("get", "tasks/subtasks")
def task_subtasks(ctx: Context, params: dict[str, Any]) -> Body:
    task = services.get_task(ctx.project, parse(TaskRef, params).validated_data["task_id"])
    rows = queries.subtask_rows(Subtask.objects.filter(task=task).order_by("position"))
    return _page(len(rows), 0, [s.subtask_out(row) for row in rows])


@command("post", "tasks/pic_task_config")
def pic_task_config(ctx: Context, params: dict[str, Any]) -> Body:
    """The seed's 20.2: picture tasks only; the new combination goes straight to the devices."""
    config = parse(PicTaskConfigIn, params)
    task = services.get_task(ctx.project, config.validated_data["task_id"])
    acks = subtask_services.set_pic_task_models(task, config.models)
    return ack_body(acks, refusal_fails=True, data=_task_doc(ctx.project, task.task_id))


# ---- subtasks -----------------------------------------------------------------------------------


def _subtask(ctx: Context, params: dict[str, Any]) -> Subtask:
    return subtask_services.get_subtask(ctx.project, parse(SubtaskRef, params).validated_data["subtask_id"])


def _subtask_doc(pk: int) -> dict[str, Any]:
    return s.subtask_out(queries.subtask_rows(Subtask.objects.filter(pk=pk))[0])


@command("get", "subtasks")
def get_subtask(ctx: Context, params: dict[str, Any]) -> Body:
    return native_ok(data=_subtask_doc(_subtask(ctx, params).pk))


@command("put", "subtasks")
def put_subtask(ctx: Context, params: dict[str, Any]) -> Body:
    """Configure (rois, callibration, config, algo_args); a running subtask gets the change at once."""
    subtask = _subtask(ctx, params)
    subtask, ack = subtask_services.apply_config(subtask, parse(s.SubtaskConfigIn, params).to_spec())
    return ack_body([ack], refusal_fails=True, data=_subtask_doc(subtask.pk))


@command("delete", "subtasks")
def delete_subtask(ctx: Context, params: dict[str, Any]) -> Body:
    subtask_services.delete_subtask(_subtask(ctx, params))
    return native_ok()


@command("post", "subtasks/config_complete")
def config_complete(ctx: Context, params: dict[str, Any]) -> Body:
    subtask = subtask_services.mark_config_complete(_subtask(ctx, params))
    return native_ok(data=_subtask_doc(subtask.pk))


@command("post", "subtasks/start")
def start_subtask(ctx: Context, params: dict[str, Any]) -> Body:
    return native_ok(subtasks=[subtask_services.start_subtask(_subtask(ctx, params)).as_dict()])


@command("post", "subtasks/stop")
def stop_subtask(ctx: Context, params: dict[str, Any]) -> Body:
    return native_ok(subtasks=[subtask_services.stop_subtask(_subtask(ctx, params)).as_dict()])


# ---- storage configs ------------------------------------------------------------------------------


def _store_conf(ctx: Context, params: dict[str, Any]) -> StoreConf:
    unid = parse(StoreConfRef, params).validated_data["unid"]
    return services.get_store_conf(ctx.project, unid, field="unid")


@command("get", "store_confs")
def get_store_confs(ctx: Context, params: dict[str, Any]) -> Body:
    if _has(params, "unid"):
        return native_ok(data=s.store_conf_out(_store_conf(ctx, params)))
    page = parse(s.PageIn, params).validated_data
    confs = StoreConf.objects.for_project(ctx.project).order_by("unid")
    items = confs[page["offset"] : page["offset"] + page["limit"]]
    return _page(confs.count(), page["offset"], [s.store_conf_out(c) for c in items])


@command("post", "store_confs")
def post_store_confs(ctx: Context, params: dict[str, Any]) -> Body:
    conf = services.create_store_conf(ctx.project, parse(s.StoreConfIn, params).validated_data)
    return native_ok(data=s.store_conf_out(conf))


@command("put", "store_confs")
def put_store_confs(ctx: Context, params: dict[str, Any]) -> Body:
    """The seed's 20.3: replace, send to every running subtask using it, answer once they acknowledge.
    A refusal still counts as delivered (the seed: the platform keeps no copy of the old file)."""
    conf = _store_conf(ctx, params)
    conf, acks = services.replace_store_conf_and_push(conf, parse(s.StoreConfUpdateIn, params).validated_data)
    return ack_body(acks, refusal_fails=False, data=s.store_conf_out(conf))


@command("delete", "store_confs")
def delete_store_confs(ctx: Context, params: dict[str, Any]) -> Body:
    services.delete_store_conf(_store_conf(ctx, params))
    return native_ok()


# ---- video channels -------------------------------------------------------------------------------


def _vchan(ctx: Context, params: dict[str, Any]) -> VideoChannel:
    refid = parse(VchanRef, params).validated_data["vchan_refid"]
    return services.get_vchan(ctx.project, refid)


@command("get", "vchans")
def get_vchans(ctx: Context, params: dict[str, Any]) -> Body:
    if _has(params, "vchan_refid"):
        return native_ok(data=s.vchan_out(_vchan(ctx, params)))
    page = parse(s.PageIn, params).validated_data
    channels = VideoChannel.objects.for_project(ctx.project).order_by("vchan_refid")
    items = channels[page["offset"] : page["offset"] + page["limit"]]
    return _page(channels.count(), page["offset"], [s.vchan_out(c) for c in items])


@command("post", "vchans")
def post_vchans(ctx: Context, params: dict[str, Any]) -> Body:
    channel = services.create_vchan(ctx.project, parse(s.VchanIn, params).validated_data)
    return native_ok(data=s.vchan_out(channel))


@command("put", "vchans")
def put_vchans(ctx: Context, params: dict[str, Any]) -> Body:
    channel = services.update_vchan(_vchan(ctx, params), parse(s.VchanUpdateIn, params).validated_data)
    return native_ok(data=s.vchan_out(channel))


@command("delete", "vchans")
def delete_vchans(ctx: Context, params: dict[str, Any]) -> Body:
    services.delete_vchan(_vchan(ctx, params))
    return native_ok()


# ---- operations -----------------------------------------------------------------------------------


def node_out(node: Any, now: datetime) -> dict[str, Any]:  # node annotated with its load
    """A node with its state, load (running subtasks / capacity) and capabilities."""
    if not node_is_live(node.last_heartbeat, now):
        state = "offline"
    else:
        state = "draining" if getattr(node, "draining", False) else "online"
    capacity = node.capacity or 0
    return {
        "name": node.name,
        "hostname": node.hostname,
        "state": state,
        "last_heartbeat": s.format_dt(node.last_heartbeat),
        "capacity": capacity,
        "running": node.running,
        "load": round(node.running / capacity, 3) if capacity else None,
        "capabilities": node.capabilities,
    }


@command("get", "nodes")
def get_nodes(ctx: Context, params: dict[str, Any]) -> Body:
    """The analysis nodes (shared by every project): state, load (running subtasks / capacity)."""
    nodes = Node.objects.annotate(running=Count("subtasks", filter=Q(subtasks__state__in=ACTIVE_STATES)))
    now = timezone.now()
    items = [node_out(node, now) for node in nodes.order_by("name")]
    return _page(len(items), 0, items)
