"""Where an event goes once it is stored (docs/outputs.md).

The analysis job calls `publish(event)` right after saving an event row. After the transaction
commits, the event is

- announced on the channel layer (websocket subscribers of its project and task), always;
- POSTed as JSON to Task.output["webhook"]["url"] by a django-q2 task (`deliver_webhook`), so a
  slow or failing receiver never holds up the analysis job;
- added to the Redis stream "vias:dis:<stream_name>" for Task.output["dis"];
- appended as one JSON line to DATA_DIR/results/<bucket>/<path>/<task_id>.jsonl, with its
  snapshot copied next to it, for Task.output["obs"].

Every attempt on an output leaves a Delivery row. Webhook retries are not slept on: a failed
attempt that may succeed later creates a one-off django-q2 Schedule for the next attempt at
now + VIAS_WEBHOOK_BACKOFF * 2 ** (attempt - 1) seconds, so no worker waits for a receiver
longer than one request's timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from datetime import timedelta
from functools import cache, partial
from pathlib import Path
from typing import Any

import httpx
import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from analysis.models import Delivery, Event
from vias.lib import artefacts
from vias.lib.announce import announce
from vias.lib.ssrf import UNRESOLVED, pinned_request, redacted, resolve_for_delivery

log = logging.getLogger(__name__)

WEBHOOK_TASK = "analysis.outputs.deliver_webhook"
CALLBACK_TASK = "analysis.outputs.deliver_callback"
DIS_PREFIX = "vias:dis:"
DIS_STREAM_RE = re.compile(r"[-A-Za-z0-9_]{1,64}")
RESULTS_DIRNAME = "results"
# Longest wait between two webhook attempts, whatever the backoff setting says.
MAX_BACKOFF_S = 3600
USER_AGENT = "VIAS-webhook/1"
# Headers the sender sets itself; a configured header of one of these names is ignored.
RESERVED_HEADERS = {"host", "content-length", "content-type", "transfer-encoding", "connection"}
MAX_ERROR = 1024
# Delivery errors are stored data written by workers with no request language: plain English.
# Only ValidationErrors (shown when a task is saved) are translated.


def task_output(task: Any) -> dict[str, Any]:
    """Task.output ({"webhook": ..., "dis": ..., "obs": ...}), or {} when there is none."""
    output = getattr(task, "output", None) or {}
    return output if isinstance(output, dict) else {}


# -- publish ---------------------------------------------------------------------------------


def publish(event: Event) -> None:
    """Send a just-saved event to the websocket channel and to every output its task configures.

    Returns at once: nothing here waits for a receiver. Everything happens after the current
    transaction commits (straight away outside one), so workers find the row and a rolled-back
    event is never sent. Failures are recorded as Delivery rows and logged, never raised.
    """
    task = event.task
    announce(task.project.project_id, "event", event.as_message(), task_id=task.task_id)
    output = task_output(task)
    if "webhook" in output:
        transaction.on_commit(partial(enqueue_webhook, event.pk), robust=True)
    if "dis" in output or "obs" in output:
        transaction.on_commit(partial(deliver_local, event, output), robust=True)


def enqueue_webhook(event_id: int, attempt: int = 1) -> None:
    """Queue one webhook attempt on django-q2; if the queue is unreachable, record the failure."""
    from django_q.tasks import async_task

    try:
        async_task(
            WEBHOOK_TASK, event_id, attempt, group="webhook", task_name=f"webhook-{event_id}-{attempt}"
        )
    except Exception as exc:  # noqa: BLE001 - Redis down must not break the analysis job
        log.warning("could not queue webhook delivery of event %s: %s", event_id, exc)
        event = Event.objects.select_related("task").filter(pk=event_id).first()
        if event is not None:
            hook = task_output(event.task).get("webhook")
            url = hook.get("url", "") if isinstance(hook, dict) else ""
            delivery = Delivery(
                event=event,
                output=Delivery.Output.WEBHOOK,
                target=redacted(str(url)),
                attempt=attempt,
                error=f"could not queue the delivery: {exc}",
            )
            _record(delivery, time.monotonic())


def deliver_local(event: Event, output: dict[str, Any]) -> None:
    """The outputs that do not leave the machine's own services: the Redis stream and the file."""
    if "dis" in output:
        deliver_dis(event, output["dis"])
    if "obs" in output:
        deliver_obs(event, output["obs"])


# -- webhook ---------------------------------------------------------------------------------


def backoff_s(attempt: int) -> float:
    """Seconds between attempt `attempt` failing and the next attempt."""
    return min(float(settings.VIAS_WEBHOOK_BACKOFF) * 2 ** (attempt - 1), MAX_BACKOFF_S)


def max_attempts() -> int:
    return 1 + max(0, int(settings.VIAS_WEBHOOK_RETRIES))


@translation.override("en")  # delivery records are for operators: one language
def deliver_webhook(event_id: int, attempt: int = 1) -> bool:
    """django-q2 task: POST the event to its task's webhook once, record the attempt, and schedule
    the next one when this one failed in a way that may pass later. Returns whether it succeeded.

    The URL is checked again and its host resolved once; the request goes to that address
    (DNS-rebinding safe), is bounded by VIAS_WEBHOOK_TIMEOUT and follows no redirect.
    """
    event = Event.objects.select_related("task").filter(pk=event_id).first()
    if event is None:
        log.info("webhook: event %s is gone, nothing to deliver", event_id)
        return False
    hook = task_output(event.task).get("webhook")
    if not isinstance(hook, dict) or not isinstance(hook.get("url"), str):
        log.info("webhook: task %s no longer has a webhook output", event.task_id)
        return False
    url = hook["url"]
    delivery = Delivery(event=event, output=Delivery.Output.WEBHOOK, target=redacted(url), attempt=attempt)
    body = json.dumps(event.as_message(), ensure_ascii=False).encode("utf-8")
    headers = _headers(hook.get("headers"), event_id, attempt)
    retry = _attempt(delivery, url, body, headers)
    if retry and attempt < max_attempts():
        schedule_webhook_retry(event_id, attempt + 1, backoff_s(attempt))
    elif not delivery.ok:
        log.warning("webhook: event %s attempt %s failed for good: %s", event_id, attempt, delivery.error)
    return delivery.ok


def _attempt(delivery: Delivery, url: str, body: bytes, headers: dict[str, str]) -> bool:
    """POST `body` once under the SSRF rules, record the attempt; whether a retry may succeed."""
    started = time.monotonic()
    retry = False
    try:
        _url, ip = resolve_for_delivery(url)
    except ValidationError as exc:
        delivery.error = "refused: " + " ".join(exc.messages)
        retry = any(error.code == UNRESOLVED for error in exc.error_list)  # DNS may answer later
    else:
        try:
            delivery.status_code = _post(url, ip, body, headers)
        except httpx.TimeoutException as exc:
            delivery.error = f"no answer within {settings.VIAS_WEBHOOK_TIMEOUT} s ({type(exc).__name__})"
            retry = True
        except httpx.HTTPError as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
            retry = True
        else:
            status = delivery.status_code
            delivery.ok = 200 <= status < 300
            if 300 <= status < 400:
                delivery.error = f"redirect refused (HTTP {status})"
            elif not delivery.ok:
                delivery.error = f"HTTP {status}"
                retry = status >= 500 or status in (408, 425, 429)
    _record(delivery, started)
    return retry


# -- task-state callbacks ----------------------------------------------------------------------


@translation.override("en")
def deliver_callback(task_id: str, message: dict[str, Any], attempt: int = 1) -> bool:
    """django-q2 task: POST one state change (subtasks.callbacks) to the task's output.callback,
    with the webhook's rules: SSRF check and pinned address, timeout, no redirects, retries with
    backoff on a one-off schedule. Returns whether it succeeded."""
    from tasks.models import Task

    task = Task.objects.filter(pk=task_id).only("task_id", "output").first()
    hook = task_output(task).get("callback") if task is not None else None
    if not isinstance(hook, dict) or not isinstance(hook.get("url"), str):
        log.info("callback: task %s has no callback (any more)", task_id)
        return False
    url = hook["url"]
    delivery = Delivery(task=task, output=Delivery.Output.CALLBACK, target=redacted(url), attempt=attempt)
    headers = {
        **_headers(hook.get("headers"), 0, attempt),
        "X-VIAS-Callback": message.get("kind", ""),
    }
    headers.pop("X-VIAS-Event-Id", None)
    body = json.dumps(message, ensure_ascii=False).encode("utf-8")
    retry = _attempt(delivery, url, body, headers)
    if retry and attempt < max_attempts():
        _schedule_callback_retry(task_id, message, attempt + 1, backoff_s(attempt))
    elif not delivery.ok:
        log.warning("callback: task %s attempt %s failed for good: %s", task_id, attempt, delivery.error)
    return delivery.ok


def _schedule_callback_retry(task_id: str, message: dict[str, Any], attempt: int, delay_s: float) -> None:
    from django_q.conf import Conf
    from django_q.models import Schedule
    from django_q.tasks import schedule

    schedule(
        CALLBACK_TASK,
        task_id,
        message,
        attempt,
        schedule_type=Schedule.ONCE,
        repeats=-1,
        next_run=timezone.now() + timedelta(seconds=delay_s),
        cluster=Conf.CLUSTER_NAME,
    )


def schedule_webhook_retry(event_id: int, attempt: int, delay_s: float) -> None:
    """A one-off django-q2 Schedule that queues `attempt` after `delay_s` seconds, on this node's
    cluster (whose scheduler runs every ~30 s, so a retry may start up to that much later)."""
    from django_q.conf import Conf
    from django_q.models import Schedule
    from django_q.tasks import schedule

    # IntegrityError: this attempt is already scheduled (the previous one ran twice).
    with contextlib.suppress(IntegrityError):
        schedule(
            WEBHOOK_TASK,
            event_id,
            attempt,
            name=f"webhook-{event_id}-{attempt}",
            schedule_type=Schedule.ONCE,
            repeats=-1,
            next_run=timezone.now() + timedelta(seconds=delay_s),
            # A node's scheduler only runs its own cluster's schedules (and, on the cluster named
            # like Q_CLUSTER["name"], those of no cluster): keep the retry where the attempt ran.
            cluster=Conf.CLUSTER_NAME,
        )


def _headers(configured: Any, event_id: int, attempt: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(configured, dict):
        for name, value in configured.items():
            if isinstance(name, str) and isinstance(value, str) and name.lower() not in RESERVED_HEADERS:
                headers[name] = value
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-VIAS-Event-Id": str(event_id),
            "X-VIAS-Delivery-Attempt": str(attempt),
        }
    )
    return headers


def _post(url: str, ip: str, body: bytes, headers: dict[str, str]) -> int:
    """POST to `url` over a connection to `ip`; the status code. No proxy from the environment
    (it would resolve the host itself), no redirects, the response body is not read."""
    connect_url, host, extensions = pinned_request(url, ip)
    timeout = httpx.Timeout(float(settings.VIAS_WEBHOOK_TIMEOUT))
    with (
        httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
        client.stream(
            "POST", connect_url, content=body, headers={**headers, **host}, extensions=extensions
        ) as response,
    ):
        return response.status_code


# -- Redis stream (dis) ------------------------------------------------------------------------


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def dis_stream_key(stream_name: object) -> str:
    """The Redis key of a `dis` output's stream; ValidationError for a name that is not 1..64 of
    letters, digits, '_' or '-'."""
    if not isinstance(stream_name, str) or not DIS_STREAM_RE.fullmatch(stream_name):
        raise ValidationError(_("dis.stream_name: use 1..64 letters, digits, '_' or '-'"))
    return f"{DIS_PREFIX}{stream_name}"


@translation.override("en")  # delivery records are for operators: one language
def deliver_dis(event: Event, spec: Any) -> Delivery:
    """XADD the event to its stream, {"event_id", "task_id", "event": <JSON message>}, keeping
    about VIAS_DIS_MAXLEN entries."""
    started = time.monotonic()
    name = spec.get("stream_name") if isinstance(spec, dict) else None
    delivery = Delivery(event=event, output=Delivery.Output.DIS, target=str(name))
    try:
        delivery.target = dis_stream_key(name)
        fields: dict[Any, Any] = {
            "event_id": str(event.pk),
            "task_id": str(event.task_id),
            "event": json.dumps(event.as_message(), ensure_ascii=False),
        }
        _redis(settings.REDIS_URL).xadd(
            delivery.target, fields, maxlen=int(settings.VIAS_DIS_MAXLEN), approximate=True
        )
        delivery.ok = True
    except ValidationError as exc:
        delivery.error = " ".join(exc.messages)
    except (redis.RedisError, OSError) as exc:
        delivery.error = f"{type(exc).__name__}: {exc}"
        log.warning("dis: event %s not added to %s: %s", event.pk, delivery.target, exc)
    return _record(delivery, started)


# -- result file (obs) -------------------------------------------------------------------------


def results_root() -> Path:
    return (Path(settings.DATA_DIR) / RESULTS_DIRNAME).resolve()


def obs_dir(bucket: object, path: object) -> Path:
    """DATA_DIR/results/<bucket>/<path>, resolved; ValidationError when it would lead outside
    DATA_DIR/results (absolute path, '..', a symlink out) or a part is not a plain name."""
    if not isinstance(bucket, str) or not isinstance(path, str):
        raise ValidationError(_("obs.bucket and obs.path must be strings"))
    parts = [bucket, *(p for p in path.split("/") if p)]
    unsafe = (
        not bucket
        or "/" in bucket
        or path.startswith("/")
        or any(p in (".", "..") or p != p.strip() or re.search(r"[\\\x00-\x1f:]", p) for p in parts)
    )
    root = results_root()
    target = None if unsafe else root.joinpath(*parts).resolve()
    if target is None or not target.is_relative_to(root) or target == root:
        raise ValidationError(
            _("obs: %(path)s is not a safe place under the results directory")
            % {"path": "/".join([bucket, path])}
        )
    return target


@translation.override("en")  # delivery records are for operators: one language
def deliver_obs(event: Event, spec: Any) -> Delivery:
    """Append the event as one JSON line to <obs_dir>/<task_id>.jsonl and copy its snapshot there
    as <task_id>-<event_id>.jpg (named in the line as "snapshot_file")."""
    started = time.monotonic()
    spec = spec if isinstance(spec, dict) else {}
    delivery = Delivery(event=event, output=Delivery.Output.OBS, target="")
    try:
        directory = obs_dir(spec.get("bucket"), spec.get("path", ""))
        target = directory / f"{event.task_id}.jsonl"
        delivery.target = str(target)
        directory.mkdir(parents=True, exist_ok=True)
        message = event.as_message()
        if snapshot := _copy_snapshot(event, directory):
            message["snapshot_file"] = snapshot
        line = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8")
        # One write on an O_APPEND file: lines from several subtasks' workers do not interleave.
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        delivery.ok = True
    except ValidationError as exc:
        delivery.error = " ".join(exc.messages)
    except OSError as exc:
        delivery.error = f"{type(exc).__name__}: {exc}"
        log.warning("obs: event %s not written: %s", event.pk, exc)
    return _record(delivery, started)


def _copy_snapshot(event: Event, directory: Path) -> str:
    if not event.snapshot:
        return ""
    # From the artefacts storage (MEDIA_ROOT or the object store), never a name outside it.
    content = artefacts.read_bytes(event.snapshot)
    if content is None:
        log.info("obs: event %s snapshot %s not found", event.pk, event.snapshot)
        return ""
    name = f"{event.task_id}-{event.pk}{Path(event.snapshot).suffix or '.jpg'}"
    (directory / name).write_bytes(content)
    return name


# -- helpers -----------------------------------------------------------------------------------


def _clip(text: object) -> str:
    return str(text).replace("\x00", "")[:MAX_ERROR]  # PostgreSQL text cannot hold NUL


def _record(delivery: Delivery, started: float) -> Delivery:
    delivery.duration_ms = (time.monotonic() - started) * 1000
    delivery.error = _clip(delivery.error)
    delivery.target = _clip(delivery.target)
    delivery.save()
    return delivery
