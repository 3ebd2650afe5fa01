"""The admin is limited to the user's projects, like the APIs (issue 15): a staff operator of
alice's project, with every model permission but not a superuser, gets 404 for bob's objects on
every change, delete and history page, finds none of them in a changelist, an autocomplete or a
foreign-key choice, changes none of them with an action, and can make API tokens only for
themselves in their own project. A superuser sees everything.

Bob's objects are made through his APIs (native, v2); only events and deliveries, which only a
running analysis makes, are written directly."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from analysis.models import Delivery, Detector, Event
from subtasks.models import Node, Subtask
from tasks.models import ApiToken, BatchTask, MTask, Project, Scene, StoreConf, Task, VideoChannel
from tests.conftest import Actor, task_body
from tests.test_v2_helpers import add_sources, batch_body, v2, v2_ok

pytestmark = pytest.mark.django_db

# Every admin model is one of these: limited to a project, or shared by every project.
TENANT_MODELS = [
    Project,
    ApiToken,
    StoreConf,
    VideoChannel,
    BatchTask,
    Task,
    MTask,
    Scene,
    Subtask,
    Event,
    Delivery,
]
SHARED_MODELS = {Node, Detector, get_user_model()}
SHARED_LABELS = {"auth.group", "django_q.schedule", "django_q.task", "django_q.success", "django_q.failure"}
SHARED_LABELS |= {"django_q.ormq"}
# (source model, field) whose autocomplete lists rows of a tenant model.
AUTOCOMPLETE = [
    ("tasks", "task", "project"),
    ("tasks", "task", "store_conf"),
    ("tasks", "task", "batch"),
    ("subtasks", "subtask", "task"),
    ("subtasks", "subtask", "video_channel"),
    ("tasks", "scene", "mtask"),
    ("analysis", "event", "subtask"),
    ("analysis", "delivery", "event"),
    ("tasks", "apitoken", "project"),
]


def url(name: str, obj: Any, view: str) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=[obj.pk] if view != name else [])


def make_objects(bob: Actor) -> dict[type, Any]:
    """One of each tenant model in bob's project, through bob's APIs where there is one."""
    conf = {"unid": "bob-conf", "name": "bob's bucket", "file_ext": "xml"}
    conf["file_b64"] = base64.b64encode(b"<root/>").decode()
    assert bob.post("/store_confs", conf).status_code == 201
    created = bob.post("/tasks", task_body(vchans=1, store_conf_unid="bob-conf")).json()
    task = Task.objects.get(pk=created["data"]["task_id"])
    add_sources(bob, 1, prefix="bobcam")
    v2_ok(bob.post(v2(bob, "/batch-tasks"), batch_body(["bobcam-0"])))
    subtask = task.subtasks.get()
    event = Event.objects.create(
        subtask=subtask, task=task, key="k1", occurred_at=timezone.now(), category="body", rule="count"
    )
    delivery = Delivery.objects.create(event=event, output="webhook", target="https://93.184.216.34/hook")
    return {
        Project: bob.project,
        ApiToken: ApiToken.objects.get(project=bob.project, user=bob.user),
        StoreConf: StoreConf.objects.get(project=bob.project),
        VideoChannel: VideoChannel.objects.filter(project=bob.project).first(),
        BatchTask: BatchTask.objects.get(project=bob.project),
        Task: task,
        MTask: task.mtasks.get(),
        Scene: Scene.objects.get(mtask__task=task),
        Subtask: subtask,
        Event: event,
        Delivery: delivery,
    }


@pytest.fixture
def operator(alice) -> Any:
    """Carol: staff in alice's project with every permission of the VIAS apps, not a superuser."""
    user = get_user_model().objects.create_user("carol", password="carol-password-123", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["tasks", "subtasks", "analysis"])
    )
    alice.project.members.add(user)
    return user


@pytest.fixture
def carol(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def bobs(bob) -> dict[type, Any]:
    return make_objects(bob)


@pytest.fixture
def alices(alice) -> dict[type, Any]:
    return make_objects(alice)


def test_every_admin_model_is_limited_to_a_project_or_shared_on_purpose():
    registered = {model for model in admin.site._registry}
    tenant = set(TENANT_MODELS)
    others = {
        m for m in registered - tenant if m not in SHARED_MODELS and m._meta.label_lower not in SHARED_LABELS
    }
    assert others == set(), "add the model to TENANT_MODELS (with a visible_to queryset) or SHARED_MODELS"
    assert tenant <= registered
    for model in TENANT_MODELS:
        assert hasattr(model.objects.all(), "visible_to"), model


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__name__)
def test_bobs_objects_are_404_on_their_change_delete_and_history_pages(carol, bobs, model):
    obj = bobs[model]
    for view in ("change", "delete", "history"):
        assert carol.get(url("", obj, view)).status_code == 404, view
    assert carol.post(url("", obj, "delete"), {"post": "yes"}).status_code == 404
    assert model.objects.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__name__)
def test_bobs_objects_are_not_in_the_changelists(carol, bobs, model):
    obj = bobs[model]
    changelist = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_changelist")
    response = carol.get(changelist)
    assert response.status_code == 200
    assert obj.pk not in {row.pk for row in response.context["cl"].result_list}
    assert url("", obj, "change") not in response.content.decode()
    # ... nor in the list's filters (bob's project's name would show there).
    assert bobs[Project].name not in response.content.decode() or model is ApiToken


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__name__)
def test_no_action_reaches_bobs_objects(carol, operator, bobs, model):
    obj = bobs[model]
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/")
    request.user = operator
    actions = list(model_admin.get_actions(request))
    assert actions, model
    before = {name: getattr(obj, name) for name in ("state", "config_complete") if hasattr(obj, name)}
    changelist = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_changelist")
    for action in actions:
        carol.post(changelist, {"action": action, "_selected_action": [obj.pk], "post": "yes"})
    fresh = model.objects.filter(pk=obj.pk).first()
    assert fresh is not None, f"an action deleted bob's {model.__name__}"
    assert {name: getattr(fresh, name) for name in before} == before
    if model is Task:
        assert set(obj.subtasks.values_list("state", flat=True)) == {"PENDING"}


@pytest.mark.parametrize(("app", "model_name", "field"), AUTOCOMPLETE)
def test_autocomplete_lists_none_of_bobs_objects(carol, bobs, alices, app, model_name, field):
    query = {"app_label": app, "model_name": model_name, "field_name": field, "term": ""}
    response = carol.get(reverse("admin:autocomplete"), query)
    assert response.status_code == 200, response.content
    results = {item["id"] for item in response.json()["results"]}
    target = apps.get_model(app, model_name)._meta.get_field(field).related_model
    assert str(bobs[target].pk) not in results
    assert str(alices[target].pk) in results  # so the check above is not vacuous


def choices(client: Client, add_url: str, field: str) -> set[Any]:
    form = client.get(add_url).context["adminform"].form
    return set(form.fields[field].queryset.values_list("pk", flat=True))


def test_foreign_key_choices_of_the_add_forms_are_alices_only(carol, bobs, alice):
    add_task = reverse("admin:tasks_task_add")
    assert choices(carol, add_task, "project") == {alice.project.pk}
    assert bobs[StoreConf].pk not in choices(carol, add_task, "store_conf")
    assert bobs[MTask].pk not in choices(carol, reverse("admin:tasks_scene_add"), "mtask")
    assert choices(carol, reverse("admin:tasks_apitoken_add"), "project") == {alice.project.pk}


def test_a_task_cannot_be_added_to_bobs_project(carol, bobs):
    before = Task.objects.count()
    body = {
        "project": bobs[Project].pk,
        "task_name": "intruder",
        "algo_type": "1",
        "source_type": "pull_video_stream",
    }
    response = carol.post(reverse("admin:tasks_task_add"), body)
    assert response.status_code == 200  # the form again, with the error
    assert Task.objects.count() == before


def test_tokens_only_for_oneself_in_ones_own_projects(carol, operator, bobs, bob, alice):
    add = reverse("admin:tasks_apitoken_add")
    for user, project in ((bob.user, bob.project), (operator, bob.project), (bob.user, alice.project)):
        response = carol.post(add, {"user": user.pk, "project": project.pk, "name": "x"})
        assert response.status_code == 200, (user, project)
        assert not ApiToken.objects.filter(name="x").exists()
    assert choices(carol, add, "user") == {operator.pk}

    response = carol.post(
        add, {"user": operator.pk, "project": alice.project.pk, "name": "mine"}, follow=True
    )
    assert response.status_code == 200
    assert ApiToken.objects.filter(name="mine", user=operator, project=alice.project).exists()
    # Tokens of the others of the project are not shown either.
    listed = carol.get(reverse("admin:tasks_apitoken_changelist")).context["cl"].result_count
    assert listed == 1


def test_the_frame_endpoint_does_not_open_bobs_sources(carol, bobs):
    frame = reverse("admin:tasks_scene_frame")
    answer = json.loads(carol.get(frame, {"subtask": bobs[Subtask].pk}).content)
    assert answer["ok"] is False and str(bobs[Subtask].pk) in answer["reason"]
    answer = json.loads(carol.get(frame, {"vchan": bobs[VideoChannel].pk}).content)
    assert answer["ok"] is False


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__name__)
def test_a_superuser_sees_bobs_objects(bobs, model):
    root = Client()
    root.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "root-pw-123456"))
    obj = bobs[model]
    assert root.get(url("", obj, "change")).status_code == 200
    changelist = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_changelist")
    assert root.get(changelist).context["cl"].result_count >= 1
