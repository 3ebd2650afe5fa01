"""A dome camera's ONVIF password is stored encrypted (vias/lib/crypto.py: Fernet, key derived from
SECRET_KEY, the data directory's key file), read back in the clear only by the code that turns the
camera, and never shown: not by the native API, the websocket's channel answers or the admin
(write-only). Passwords stored before were encrypted by the data migration."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from tasks.models import VideoChannel
from vias.lib import crypto

PASSWORD = "s3cret-ONVIF-pw"
DOME = {
    "vchan_refid": "dome",
    "url": "rtsp://10.0.0.5/live",
    "ptz": True,
    "onvif_url": "http://10.0.0.5/onvif/device_service",
    "onvif_username": "op",
    "onvif_password": PASSWORD,
}


def stored(refid: str = "dome") -> str:
    """The column as the database holds it, past the model field."""
    table = connection.ops.quote_name(VideoChannel._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT onvif_password FROM {table} WHERE vchan_refid = %s", [refid])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_the_password_is_stored_encrypted_and_never_answered(alice):
    created = alice.post("/vchans", DOME)
    assert created.status_code == 201, created.content
    raw = stored()
    assert raw.startswith("fernet:") and PASSWORD not in raw
    assert VideoChannel.objects.get(vchan_refid="dome").onvif_password == PASSWORD  # for the camera
    for answer in (created, alice.get("/vchans/dome"), alice.get("/vchans")):
        assert "onvif_password" not in answer.content.decode()
        assert PASSWORD not in answer.content.decode() and raw not in answer.content.decode()

    # Saved again (another name): a new token, the same password.
    assert alice.put("/vchans/dome", {"name": "dome 1", "url": DOME["url"]}).status_code == 200
    assert VideoChannel.objects.get(vchan_refid="dome").onvif_password == PASSWORD

    # The admin's form: neither the password nor its token in the page.
    user = get_user_model().objects.create_superuser("root", "root@example.com", "root-password-123")
    alice.project.members.add(user)
    admin = Client()
    admin.force_login(user)
    channel = VideoChannel.objects.get(vchan_refid="dome")
    page = admin.get(reverse("admin:tasks_videochannel_change", args=[channel.pk])).content.decode()
    assert 'name="onvif_password"' in page
    assert PASSWORD not in page and stored() not in page


@pytest.mark.django_db
def test_a_password_longer_than_its_limit_is_refused_and_nothing_stored(alice):
    answer = alice.post("/vchans", {**DOME, "onvif_password": "x" * 129})
    assert answer.status_code == 400 and "onvif_password" in answer.content.decode()
    assert not VideoChannel.objects.exists()
    # 128 characters of four UTF-8 bytes each fit the column.
    assert alice.post("/vchans", {**DOME, "onvif_password": "\U0001f600" * 128}).status_code == 201
    assert VideoChannel.objects.get().onvif_password == "\U0001f600" * 128


def test_only_the_secret_key_opens_it(settings):
    settings.SECRET_KEY = "k" * 50
    token = crypto.encrypt(PASSWORD)
    assert crypto.decrypt(token) == PASSWORD and crypto.encrypt(PASSWORD) != token  # not deterministic
    settings.SECRET_KEY = "another-" * 8
    assert crypto.decrypt(token) == ""  # another data directory's key: nothing
    settings.SECRET_KEY_FALLBACKS = ["k" * 50]
    assert crypto.decrypt(token) == PASSWORD  # a key being rotated out still opens it


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_passwords_stored_in_the_clear(alice):
    before, after = (
        [("tasks", "0007_journey_ptz_channels")],
        [("tasks", "0008_journey_onvif_password_encrypted")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = (
            MigrationExecutor(connection).loader.project_state(before).apps.get_model("tasks", "VideoChannel")
        )
        old.objects.create(
            project_id=alice.project.pk,
            vchan_refid="dome",
            url="rtsp://10.0.0.5/live",
            ptz=True,
            onvif_url=DOME["onvif_url"],
            onvif_password=PASSWORD,
        )
        old.objects.create(project_id=alice.project.pk, vchan_refid="fixed", url="rtsp://10.0.0.6/live")
        assert stored() == PASSWORD
        MigrationExecutor(connection).migrate(after)
        assert stored().startswith("fernet:") and stored("fixed") == ""
        assert VideoChannel.objects.get(vchan_refid="dome").onvif_password == PASSWORD
        MigrationExecutor(connection).migrate(before)  # and back: in the clear again
        assert stored() == PASSWORD
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
