"""The operator's admin with Django's test client: pages, actions through the services, messages,
XML errors with their line and column, frames for the drawing editor, and the cost of every list."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from analysis.models import Delivery, Detector, Event
from subtasks.choices import State
from subtasks.models import Node, Subtask
from tasks import services as task_services
from tasks.models import ApiToken, MTask, Project, Scene, SceneRoi, StoreConf, Task, VideoChannel

pytestmark = pytest.mark.django_db

VIDEO = Path(__file__).resolve().parent / "data" / "bikes.mp4"
ROI = """<root><polygon name="door" mode="include"><point x="0.1" y="0.2"/><point x="0.6" y="0.2"/>
<point x="0.6" y="0.9"/></polygon></root>"""


@pytest.fixture
def project(db) -> Project:
    return Project.objects.create(project_id="ops", name="operations")


@pytest.fixture
def staff(db, project) -> Client:
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-password-123")
    project.members.add(user)
    client = Client()
    client.force_login(user)
    return client


def make_task(project: Project, name: str = "front door", vchans: int = 2) -> Task:
    slug = name.replace(" ", "-")
    spec = {
        "task_name": name,
        "algo_type": "1",
        "run_dt": timezone.now(),
        "play_url": "rtsp://192.168.9.155:8554/live",
        "vchans": [
            {"vchan_refid": f"{slug}-cam-{i}", "url": f"rtsp://10.0.0.{i + 1}/live"} for i in range(vchans)
        ],
        "mtasks": [
            {
                "mtask_unid": "m1",
                "name": "all day",
                "scenes": [
                    {
                        "scene_unid": "s1",
                        "name": "door",
                        "algo_type": "1",
                        "vchan_refid": f"{slug}-cam-0",
                        "rois": [ROI],
                    }
                ],
            }
        ],
    }
    return task_services.create_task(project, spec)


@pytest.fixture
def task(project) -> Task:
    return make_task(project)


@pytest.fixture
def body_detector(db) -> Detector:
    # start_task refuses a task whose categories have no registered detector.
    return Detector.objects.create(
        name="people", onnx_file="people.onnx", classes={"0": {"category": "body"}}
    )


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# ---- pages ---------------------------------------------------------------------------------------


def test_task_list_shows_the_derived_state_counts_and_progress(staff, task):
    Subtask.objects.filter(task=task, position=0).update(state=State.RUNNING, progress=40.0)
    Subtask.objects.filter(task=task, position=1).update(state=State.STOPPED, progress=20.0)

    page = staff.get(reverse("admin:tasks_task_changelist")).content.decode()

    assert 'class="vias-badge vias-state-running" data-state="RUNNING"' in page
    # The states' words (translated), the codes in data-count-state for live.js.
    assert 'data-count-state="RUNNING"' in page and "running 1" in page and "stopped 1" in page
    assert 'data-progress="30.0"' in page


def test_task_page_shows_status_buttons_scenes_and_subtasks(staff, task):
    page = staff.get(reverse("admin:tasks_task_change", args=[task.pk])).content.decode()

    assert 'id="vias-task-panel"' in page
    assert page.count('data-count-state="') >= len(State.values)  # every state, zeros hidden
    # Its subtasks all wait for their configuration: only that button (buttons follow the state).
    assert reverse("admin:tasks_task_command", args=[task.pk, "config-complete"]) in page
    for verb in ("start", "stop", "dispatch"):
        assert reverse("admin:tasks_task_command", args=[task.pk, verb]) not in page
    scene = Scene.objects.get(mtask__task=task)
    assert reverse("admin:tasks_scene_change", args=[scene.pk]) in page
    assert f"{reverse('admin:tasks_scene_add')}?mtask=" in page
    assert page.count('data-subtask-id="') == 2


def test_every_admin_page_of_a_task_opens(staff, task):
    subtask = task.subtasks.first()
    scene = Scene.objects.get(mtask__task=task)
    for url in (
        reverse("admin:index"),
        reverse("admin:tasks_task_add"),
        reverse("admin:subtasks_subtask_change", args=[subtask.pk]),
        reverse("admin:tasks_scene_change", args=[scene.pk]),
        reverse("admin:tasks_scene_add") + f"?mtask={scene.mtask_id}",
        reverse("admin:tasks_storeconf_add"),
        reverse("admin:tasks_videochannel_add"),
        reverse("admin:tasks_apitoken_add"),
    ):
        assert staff.get(url).status_code == 200, url


def test_the_admin_speaks_chinese_when_asked(staff, task):
    Subtask.objects.filter(task=task).update(state=State.RUNNING)
    page = staff.get(reverse("admin:tasks_task_changelist"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'lang="zh-hans"' in page
    assert (
        'data-state="RUNNING" title="RUNNING">运行中<' in page
    )  # the state's label, from the shared catalogue
    assert "简体中文" in page  # the language switch


# ---- actions call the services and report each subtask ---------------------------------------------


def test_config_complete_then_start_then_stop_report_each_subtask(staff, task, body_detector):
    url = reverse("admin:tasks_task_changelist")
    answer = staff.post(url, {"action": "config_complete", "_selected_action": [task.pk]}, follow=True)
    assert sum("config complete: subtask" in t and "→ configured" in t for t in texts(answer)) == 2
    assert set(task.subtasks.values_list("state", flat=True)) == {State.CONFIGURED}

    answer = staff.post(reverse("admin:tasks_task_command", args=[task.pk, "start"]), follow=True)
    assert sum("→ starting" in t for t in texts(answer)) == 2
    assert set(task.subtasks.values_list("state", flat=True)) == {State.STARTING}

    answer = staff.post(url, {"action": "stop", "_selected_action": [task.pk]}, follow=True)
    assert sum("→ stopped" in t for t in texts(answer)) == 2
    assert set(task.subtasks.values_list("state", flat=True)) == {State.STOPPED}


def test_a_refused_start_is_an_error_message_not_a_500(staff, task, body_detector):
    answer = staff.post(reverse("admin:tasks_task_command", args=[task.pk, "start"]), follow=True)
    assert answer.status_code == 200
    assert any("config-complete" in t for t in texts(answer))
    assert set(task.subtasks.values_list("state", flat=True)) == {State.PENDING}


def test_subtask_buttons_start_and_stop_one_subtask(staff, task, body_detector):
    subtask = task.subtasks.first()
    command = "admin:subtasks_subtask_command"
    staff.post(reverse(command, args=[subtask.pk, "config-complete"]))
    answer = staff.post(reverse(command, args=[subtask.pk, "start"]), follow=True)
    assert any(f"subtask {subtask.pk} → starting" in t for t in texts(answer))
    answer = staff.post(reverse(command, args=[subtask.pk, "stop"]), follow=True)
    assert any(f"subtask {subtask.pk} → stopped" in t for t in texts(answer))
    assert Subtask.objects.get(pk=subtask.pk).state == State.STOPPED
    assert Subtask.objects.exclude(pk=subtask.pk).get().state == State.PENDING


def test_dispatch_again_moves_an_abnormal_subtask_back_to_starting(staff, task):
    subtask = task.subtasks.first()
    Subtask.objects.filter(pk=subtask.pk).update(state=State.ABNORMAL, config_complete=True)
    answer = staff.post(reverse("admin:subtasks_subtask_command", args=[subtask.pk, "dispatch"]), follow=True)
    assert any("→ starting" in t for t in texts(answer))
    assert Subtask.objects.get(pk=subtask.pk).state == State.STARTING


def test_the_task_pages_dispatch_again_button_redispatches_an_abnormal_subtask(
    staff, task, django_capture_on_commit_callbacks
):
    """The button on the task's page posts to its command URL, as the browser's form does."""
    abnormal, other = task.subtasks.order_by("position")
    Subtask.objects.filter(pk=abnormal.pk).update(state=State.ABNORMAL, config_complete=True)
    page = staff.get(reverse("admin:tasks_task_change", args=[task.pk])).content.decode()
    url = reverse("admin:tasks_task_command", args=[task.pk, "dispatch"])
    assert f'action="{url}"' in page or url in page

    with django_capture_on_commit_callbacks(execute=True):  # the dispatch runs once the write commits
        answer = staff.post(url, follow=True)

    assert answer.status_code == 200
    assert any(f"dispatch again: subtask {abnormal.pk} → starting" in t for t in texts(answer))
    again = Subtask.objects.get(pk=abnormal.pk)
    # Dispatched: with no live node it waits for one, and says so.
    assert again.state == State.STARTING and "waiting" in again.status_reason
    assert Subtask.objects.get(pk=other.pk).state == State.PENDING


def test_the_dispatch_again_action_on_the_task_list_redispatches_an_abnormal_subtask(staff, task):
    abnormal = task.subtasks.order_by("position").first()
    Subtask.objects.filter(pk=abnormal.pk).update(state=State.ABNORMAL, config_complete=True)
    answer = staff.post(
        reverse("admin:tasks_task_changelist"),
        {"action": "dispatch_again", "_selected_action": [task.pk]},
        follow=True,
    )
    assert answer.status_code == 200
    assert any(f"subtask {abnormal.pk} → starting" in t for t in texts(answer))
    assert Subtask.objects.get(pk=abnormal.pk).state == State.STARTING


def test_commands_are_post_only(staff, task):
    assert staff.get(reverse("admin:tasks_task_command", args=[task.pk, "start"])).status_code == 404


def test_deleting_a_task_with_subtasks_is_refused_with_a_message(staff, task):
    answer = staff.post(
        reverse("admin:tasks_task_changelist"),
        {"action": "delete_through_service", "_selected_action": [task.pk]},
        follow=True,
    )
    assert any("subtasks" in t for t in texts(answer))
    assert Task.objects.filter(pk=task.pk).exists()


def test_adding_a_task_splits_it_through_create_task(staff, project):
    channels = [
        task_services.create_vchan(project, {"vchan_refid": f"c{i}", "url": f"rtsp://10.1.0.{i}/x"})
        for i in (1, 2)
    ]
    data = {
        "project": project.pk,
        "task_name": "gate",
        "algo_type": "1",
        "run_dt_0": "2026-01-02",
        "run_dt_1": "10:00:00",
        "play_url": "rtsp://10.0.0.9/live",
        "source_type": "pull_video_stream",
        "node_count": "1",
        "detector_models": "[]",
        "output": "{}",
        "schedule": "{}",
        "vchans": [c.pk for c in channels],
        "mtasks-TOTAL_FORMS": "1",
        "mtasks-INITIAL_FORMS": "0",
        "mtasks-0-position": "0",
        "mtasks-0-mtask_unid": "morning",
        "mtasks-0-name": "morning",
        "mtasks-0-type": "0",
        "mtasks-0-time_interval": "5",
    }
    answer = staff.post(reverse("admin:tasks_task_add"), data, follow=True)
    assert answer.status_code == 200
    task = Task.objects.get(task_name="gate")
    assert [s.video_channel.vchan_refid for s in task.subtasks.order_by("position")] == ["c1", "c2"]
    assert list(task.mtasks.values_list("mtask_unid", flat=True)) == ["morning"]
    assert any("2 subtasks" in t for t in texts(answer))


def task_change_data(staff, task, **changes) -> dict:
    """The task change page's form as the browser would post it back, with `changes`."""
    page = staff.get(reverse("admin:tasks_task_change", args=[task.pk]))
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"run_dt_0": "2026-01-02", "run_dt_1": "10:00:00"})
    data.update({"detector_models": "[]", "output": "{}", "schedule": "{}", "config": "{}", "store_conf": ""})
    for prefix, formset in (("mtasks", MTask), ("subtasks", Subtask)):
        rows = list(formset.objects.filter(task=task).order_by("position"))
        data.update({f"{prefix}-TOTAL_FORMS": len(rows), f"{prefix}-INITIAL_FORMS": len(rows)})
        for i, row in enumerate(rows):
            data[f"{prefix}-{i}-id"] = row.pk
            data[f"{prefix}-{i}-task"] = task.pk
            if prefix == "mtasks":
                data.update(
                    {
                        f"mtasks-{i}-{f}": getattr(row, f)
                        for f in ("position", "mtask_unid", "name", "type", "time_interval")
                    }
                )
    data.update(changes)
    return data


def test_changing_a_running_task_is_refused_by_update_task(staff, task):
    Subtask.objects.filter(task=task).update(state=State.RUNNING)
    data = task_change_data(staff, task, task_name="renamed")
    answer = staff.post(reverse("admin:tasks_task_change", args=[task.pk]), data, follow=True)
    assert any("stop the task" in t for t in texts(answer)), texts(answer)
    assert Task.objects.get(pk=task.pk).task_name == "front door"


# ---- XML fields: pretty-printed, validated, errors at their line ------------------------------------


def scene_form_data(scene: Scene, **changes) -> dict:
    data = {
        "mtask": scene.mtask_id,
        "position": scene.position,
        "scene_unid": scene.scene_unid,
        "name": scene.name,
        "algo_type": scene.algo_type,
        "vchan_refid": scene.vchan_refid,
        "preset": scene.preset,
        "calibration_xml": scene.calibration_xml,
        "config_xml": scene.config_xml,
        "basic_config_xml": scene.basic_config_xml,
        "algo_args": "{}",
        "link_scenes": "[]",
        "play_urls": "{}",
        "is_active": "on",
        "status_reason": "",
        "rois-TOTAL_FORMS": "0",
        "rois-INITIAL_FORMS": "0",
    }
    rois = list(scene.rois.all())
    data.update({"rois-TOTAL_FORMS": len(rois), "rois-INITIAL_FORMS": len(rois)})
    for i, roi in enumerate(rois):
        data.update(
            {
                f"rois-{i}-id": roi.pk,
                f"rois-{i}-scene": scene.pk,
                f"rois-{i}-position": i,
                f"rois-{i}-xml": roi.xml,
            }
        )
    data.update(changes)
    return data


def test_xml_is_pretty_printed_when_the_page_opens(staff, task):
    scene = Scene.objects.get(mtask__task=task)
    Scene.objects.filter(pk=scene.pk).update(config_xml="<root><a><b>1</b></a></root>")
    page = staff.get(reverse("admin:tasks_scene_change", args=[scene.pk])).content.decode()
    assert "&lt;root&gt;\n  &lt;a&gt;\n    &lt;b&gt;1&lt;/b&gt;" in page
    assert "vendor/codemirror-5.65.21/lib/codemirror.js" in page


def test_invalid_xml_is_refused_with_its_line_and_column_beside_the_field(staff, task):
    scene = Scene.objects.get(mtask__task=task)
    broken = "<root>\n  <a>\n  </b>\n</root>"
    answer = staff.post(
        reverse("admin:tasks_scene_change", args=[scene.pk]), scene_form_data(scene, config_xml=broken)
    )
    assert answer.status_code == 200  # the form again, with the error
    page = answer.content.decode()
    assert 'data-error-line="3"' in page
    assert re.search(r'class="vias-xml-error-at"[^>]*>line 3, column \d+<', page)
    assert "XML error at line 3" in page
    assert Scene.objects.get(pk=scene.pk).config_xml != broken


def test_a_bad_roi_document_names_its_line(staff, task):
    scene = Scene.objects.get(mtask__task=task)
    bad = '<root>\n<polygon name="a">\n<point x="0" y="0"/>\n</polygon>\n</root>'
    data = scene_form_data(scene)
    data["rois-0-xml"] = bad
    page = staff.post(reverse("admin:tasks_scene_change", args=[scene.pk]), data).content.decode()
    assert 'data-error-line="2"' in page
    assert "a polygon needs 3..256 points (line 2)" in page


def test_a_degenerate_calibration_is_refused(staff, task):
    scene = Scene.objects.get(mtask__task=task)
    pairs = "".join(
        f'<pair><image x="{x}" y="{x}"/><ground x="{x}" y="0"/></pair>' for x in ("0.1", "0.2", "0.3", "0.4")
    )
    page = staff.post(
        reverse("admin:tasks_scene_change", args=[scene.pk]),
        scene_form_data(scene, calibration_xml=f"<root>{pairs}</root>"),
    ).content.decode()
    assert "their image points are on one line" in page and 'data-error-line="1"' in page


def test_a_valid_scene_saves_and_copies_to_its_subtasks(staff, task):
    scene = Scene.objects.get(mtask__task=task)
    new_roi = ROI.replace("door", "gate")
    data = scene_form_data(scene)
    data["rois-0-xml"] = new_roi
    answer = staff.post(reverse("admin:tasks_scene_change", args=[scene.pk]), data)
    assert answer.status_code == 302
    assert 'name="gate"' in SceneRoi.objects.get(scene=scene).xml
    answer = staff.post(reverse("admin:tasks_scene_apply", args=[scene.pk]), follow=True)
    assert any("configuration copied" in t for t in texts(answer))
    assert [s.rois[0].count('name="gate"') for s in scene.subtasks.all()] == [1, 1]


def test_subtask_configuration_is_saved_through_apply_config(staff, task):
    subtask = task.subtasks.first()
    url = reverse("admin:subtasks_subtask_change", args=[subtask.pk])
    page = staff.get(url).content.decode()
    assert 'name="rois_0"' in page and 'name="rois_1"' in page  # its ROI document plus an empty one
    data = {
        "rois_0": ROI.replace("door", "lobby"),
        "rois_1": "",
        "calibration_xml": subtask.calibration_xml,
        "config_xml": subtask.config_xml,
        "algo_args": "{}",
    }
    answer = staff.post(url, data, follow=True)
    assert any("configuration saved" in t for t in texts(answer)), texts(answer)
    assert 'name="lobby"' in Subtask.objects.get(pk=subtask.pk).rois[0]

    data["rois_1"] = "<root><line name='x'><point x='0' y='0'/></line></root>"
    page = staff.post(url, data).content.decode()
    assert "ROI 2:" in page and 'data-error-line="1"' in page


def test_store_conf_is_created_and_replaced_through_the_services(staff, project):
    url = reverse("admin:tasks_storeconf_add")
    data = {
        "project": project.pk,
        "unid": "sc1",
        "name": "results",
        "file_ext": "xml",
        "text": "<root><a/></root>",
    }
    assert staff.post(url, data).status_code == 302
    conf = StoreConf.objects.get(unid="sc1")
    assert (conf.version, bytes(conf.content)) == (1, b"<root><a/></root>")

    change = reverse("admin:tasks_storeconf_change", args=[conf.pk])
    answer = staff.post(change, {"name": "results", "file_ext": "xml", "text": "<root>\n<b>\n</root>"})
    assert 'data-error-line="3"' in answer.content.decode()
    answer = staff.post(
        change, {"name": "results", "file_ext": "xml", "text": "<root><b/></root>"}, follow=True
    )
    conf.refresh_from_db()
    assert (conf.version, bytes(conf.content)) == (2, b"<root><b/></root>")
    assert answer.status_code == 200


def test_video_channels_go_through_the_services(staff, project, task):
    url = reverse("admin:tasks_videochannel_add")
    data = {"project": project.pk, "vchan_refid": "new-cam", "name": "", "url": "file:///etc/passwd"}
    assert "is not allowed" in staff.post(url, data).content.decode()
    data["url"] = "rtsp://10.9.9.9/live"
    assert staff.post(url, data).status_code == 302
    used = VideoChannel.objects.get(vchan_refid="front-door-cam-0")
    answer = staff.post(
        reverse("admin:tasks_videochannel_changelist"),
        {"action": "delete_through_service", "_selected_action": [used.pk]},
        follow=True,
    )
    assert any("used by 1 subtasks" in t for t in texts(answer))


def test_a_dome_camera_keeps_its_onvif_password_unshown(staff, project):
    url = reverse("admin:tasks_videochannel_add")
    data = {"project": project.pk, "vchan_refid": "dome", "name": "", "url": "rtsp://10.9.9.8/live"}
    onvif = {"ptz": "on", "onvif_url": "http://10.9.9.8/onvif/device_service", "onvif_username": "op"}
    assert staff.post(url, {**data, **onvif, "onvif_password": "s3cret"}).status_code == 302
    dome = VideoChannel.objects.get(vchan_refid="dome")
    assert (dome.ptz, dome.onvif_username, dome.onvif_password) == (True, "op", "s3cret")
    change = reverse("admin:tasks_videochannel_change", args=[dome.pk])
    assert "s3cret" not in staff.get(change).content.decode()
    onvif["onvif_username"] = "op2"
    assert staff.post(change, {**data, **onvif, "onvif_password": ""}).status_code == 302
    dome.refresh_from_db()
    assert (dome.onvif_username, dome.onvif_password) == ("op2", "s3cret")  # empty: kept
    refused = staff.post(change, {**data, **onvif, "onvif_url": "http://127.0.0.1/onvif"})
    assert "refused" in refused.content.decode()  # the source URL policy


def test_a_new_token_is_shown_once(staff, project):
    user = get_user_model().objects.get(username="admin")
    answer = staff.post(
        reverse("admin:tasks_apitoken_add"),
        {"user": user.pk, "project": project.pk, "name": "ci"},
        follow=True,
    )
    raw = next(t for t in texts(answer) if "shown only now" in t).rsplit(" ", 1)[1]
    assert ApiToken.objects.for_key(raw).name == "ci"


# ---- frames for the drawing editor ----------------------------------------------------------------


@pytest.fixture
def video_channel(project) -> VideoChannel:
    store = Path(settings.DATA_DIR) / "videos"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(VIDEO, store / "bikes.mp4")
    return task_services.create_vchan(project, {"vchan_refid": "file-cam", "url": "bikes.mp4"})


def test_a_frame_is_grabbed_cached_and_served_to_staff_only(staff, video_channel):
    url = reverse("admin:tasks_scene_frame") + f"?vchan={video_channel.pk}"
    info = staff.get(url).json()
    assert info["ok"] and info["width"] > 0 and info["height"] > 0
    image = staff.get(info["src"])
    assert image["Content-Type"] == "image/jpeg"
    assert b"".join(image.streaming_content)[:2] == b"\xff\xd8"
    assert Client().get(info["src"]).status_code == 302  # to the login page
    assert staff.get(url).json()["grabbed_at"] == info["grabbed_at"]  # from the cache


def test_no_frame_gives_a_blank_canvas_of_the_channel_size_and_the_reason(staff, project, task):
    channel = VideoChannel.objects.get(vchan_refid="front-door-cam-1")
    VideoChannel.objects.filter(pk=channel.pk).update(url="missing.mp4", width=640, height=360)
    info = staff.get(reverse("admin:tasks_scene_frame") + f"?vchan={channel.pk}").json()
    assert (info["ok"], info["width"], info["height"]) == (False, 640, 360)
    assert "missing.mp4" in info["reason"]
    mtask = MTask.objects.get(task=task)
    info = staff.get(reverse("admin:tasks_scene_frame") + f"?mtask={mtask.pk}&vchan_refid=nope").json()
    assert (info["ok"], info["width"], info["height"]) == (False, 1280, 720)
    assert "nope" in info["reason"]


# ---- events ------------------------------------------------------------------------------------------


def add_events(task: Task, n: int, snapshot: str = "") -> None:
    subtask = task.subtasks.first()
    now = timezone.now()
    Event.objects.bulk_create(
        Event(
            subtask=subtask,
            task=task,
            key=f"{task.pk}-{Event.objects.count()}-{i}",
            occurred_at=now - timedelta(minutes=i),
            category="body",
            rule="intrusion" if i % 2 else "line_cross",
            box=[1, 2, 3, 4],
            score=0.9,
            snapshot=snapshot,
        )
        for i in range(n)
    )


def test_event_list_has_thumbnails_filters_and_a_chart(staff, task):
    media = Path(settings.MEDIA_ROOT) / "events"
    media.mkdir(parents=True, exist_ok=True)
    (media / "one.jpg").write_bytes(b"\xff\xd8fake")
    add_events(task, 6, snapshot="events/one.jpg")
    page = staff.get(
        reverse("admin:analysis_event_changelist") + f"?task__task_id__exact={task.pk}"
    ).content.decode()
    assert page.count('class="vias-thumb"') == 6
    assert '<figure class="vias-chart">' in page and page.count("<rect ") >= 1
    assert "?rule=intrusion" in page and "?since=24h" in page
    event = Event.objects.first()
    image = staff.get(reverse("admin:analysis_event_snapshot", args=[event.pk]))
    assert b"".join(image.streaming_content) == b"\xff\xd8fake"


def test_the_task_page_charts_its_events(staff, task):
    add_events(task, 3)
    page = staff.get(reverse("admin:tasks_task_change", args=[task.pk])).content.decode()
    assert "3 events" in page


# ---- lists cost the same queries for few or many rows ----------------------------------------------


def grow(project: Project, k: int) -> None:
    """k more rows in every model the admin lists."""
    for i in range(k):
        task = make_task(project, name=f"t{Task.objects.count()}-{i}")
        Subtask.objects.filter(task=task, position=0).update(state=State.RUNNING, progress=50)
        add_events(task, 2)
        Delivery.objects.create(
            event=Event.objects.filter(task=task).first(), output="webhook", target="http://x/"
        )
        StoreConf.objects.create(
            project=project, unid=f"sc-{task.pk}", name="s", file_ext="xml", content=b"<root/>"
        )
        Node.objects.create(name=f"node-{task.pk}")
        Detector.objects.create(
            name=f"det-{task.pk}", onnx_file="x.onnx", classes={"0": {"category": "body"}}
        )
        user = get_user_model().objects.create_user(f"u-{task.pk}")
        ApiToken.issue(user, Project.objects.create(project_id=f"p{task.pk}"))


CHANGELISTS = [
    "admin:tasks_task_changelist",
    "admin:tasks_scene_changelist",
    "admin:tasks_mtask_changelist",
    "admin:tasks_storeconf_changelist",
    "admin:tasks_videochannel_changelist",
    "admin:tasks_project_changelist",
    "admin:tasks_apitoken_changelist",
    "admin:tasks_batchtask_changelist",
    "admin:subtasks_subtask_changelist",
    "admin:subtasks_node_changelist",
    "admin:analysis_detector_changelist",
    "admin:analysis_event_changelist",
    "admin:analysis_delivery_changelist",
]


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


def test_no_list_queries_per_row(staff, project):
    grow(project, 1)
    few = {name: count_queries(staff, reverse(name)) for name in CHANGELISTS}
    grow(project, 4)
    many = {name: count_queries(staff, reverse(name)) for name in CHANGELISTS}
    assert many == few


def test_the_task_page_costs_the_same_for_more_subtasks(staff, project):
    small, large = make_task(project, "small", vchans=1), make_task(project, "large", vchans=6)
    add_events(small, 2)
    add_events(large, 12)
    assert count_queries(staff, reverse("admin:tasks_task_change", args=[large.pk])) == count_queries(
        staff, reverse("admin:tasks_task_change", args=[small.pk])
    )


def test_tasks_filter_by_their_derived_state(staff, project):
    running, idle = make_task(project, "running"), make_task(project, "idle")
    Subtask.objects.filter(task=running, position=0).update(state=State.RUNNING)
    url = reverse("admin:tasks_task_changelist")
    page = staff.get(url + "?state=RUNNING").content.decode()
    assert f'data-task-id="{running.pk}"' in page and f'data-task-id="{idle.pk}"' not in page
    page = staff.get(url + "?state=PENDING").content.decode()
    assert f'data-task-id="{idle.pk}"' in page and f'data-task-id="{running.pk}"' not in page


def test_a_scene_and_its_rois_are_saved_through_the_service_in_order(staff, task):
    scene = Scene.objects.get(mtask__task=task)
    data = scene_form_data(scene, name="gate")
    count = int(data["rois-TOTAL_FORMS"])
    line = (
        '<root><line name="l%d" direction="both"><point x="0" y="0.5"/><point x="1" y="0.5"/></line></root>'
    )
    data.update({"rois-TOTAL_FORMS": count + 1, f"rois-{count}-position": 0, f"rois-{count}-xml": line % 9})
    for i in range(count):
        data[f"rois-{i}-position"] = i + 1
    answer = staff.post(reverse("admin:tasks_scene_change", args=[scene.pk]), data)
    assert answer.status_code == 302, answer.content.decode()[:2000]
    scene.refresh_from_db()
    assert scene.name == "gate"
    xmls = list(scene.rois.order_by("position").values_list("xml", flat=True))
    assert len(xmls) == count + 1 and 'name="l9"' in xmls[0]


def test_a_scene_of_a_running_task_reaches_its_subtasks_and_moving_one_is_refused(staff, task):
    from subtasks.choices import State
    from subtasks.models import Subtask

    scene = Scene.objects.get(mtask__task=task)
    Subtask.objects.filter(task=task).update(state=State.RUNNING)
    data = scene_form_data(scene, name="x")
    data["rois-0-xml"] = ROI.replace("door", "gate")
    answer = staff.post(reverse("admin:tasks_scene_change", args=[scene.pk]), data, follow=True)
    assert Scene.objects.get(pk=scene.pk).name == "x"
    reached = [t for t in texts(answer) if t.startswith("scene change: subtask")]
    assert len(reached) == 2, texts(answer)  # each subtask it configures answered (no job: "applied")
    assert all('name="gate"' in s.rois[0] for s in Subtask.objects.filter(task=task))

    # A second scene naming cam-1 would take that running subtask from the first one: refused.
    add = {**scene_form_data(scene, name="side", scene_unid="s2", vchan_refid="front-door-cam-1")}
    add.update({"rois-TOTAL_FORMS": 0, "rois-INITIAL_FORMS": 0})
    page = staff.post(reverse("admin:tasks_scene_add"), add, follow=True).content.decode()
    assert "stop it first" in page and "front-door-cam-1" in page
    assert not Scene.objects.filter(name="side").exists()


def test_the_mtask_inline_is_saved_through_the_service(staff, task):
    first = task.mtasks.order_by("position").first()
    data = task_change_data(staff, task, **{"mtasks-0-name": "evening"})
    answer = staff.post(reverse("admin:tasks_task_change", args=[task.pk]), data, follow=True)
    assert answer.status_code == 200
    assert MTask.objects.get(pk=first.pk).name == "evening"
    data = task_change_data(staff, task, **{"mtasks-0-DELETE": "on"})
    staff.post(reverse("admin:tasks_task_change", args=[task.pk]), data, follow=True)
    assert not MTask.objects.filter(pk=first.pk).exists()


def test_the_mtask_inline_of_a_running_task_is_refused(staff, task):
    first = task.mtasks.order_by("position").first()
    data = task_change_data(staff, task, **{"mtasks-0-name": "evening"})
    Subtask.objects.filter(task=task).update(state=State.RUNNING)
    answer = staff.post(reverse("admin:tasks_task_change", args=[task.pk]), data, follow=True)
    assert any("stop the task" in t for t in texts(answer)), texts(answer)
    assert MTask.objects.get(pk=first.pk).name != "evening"
