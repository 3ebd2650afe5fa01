"""manage.py create_token: a token an operator can paste, stored only as its hash."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from tasks.models import ApiToken, Project
from vias.lib.auth import TOKEN_RE, token_for

pytestmark = pytest.mark.django_db


def create_token(*args: str) -> tuple[str, str, str]:
    """(token, stdout, stderr) of one run."""
    out, err = StringIO(), StringIO()
    call_command("create_token", *args, stdout=out, stderr=err)
    stdout = out.getvalue()
    return stdout.splitlines()[-1], stdout, err.getvalue()


def test_creates_user_and_project_when_missing():
    token, _stdout, stderr = create_token("carol", "--project", "proj-carol")
    user = get_user_model().objects.get(username="carol")
    project = Project.objects.get(project_id="proj-carol")
    assert not user.has_usable_password()
    assert project.members.filter(pk=user.pk).exists()
    assert "created user carol" in stderr
    assert "created project proj-carol" in stderr
    assert TOKEN_RE.match(token)


def test_default_project_is_default():
    create_token("carol")
    assert Project.objects.filter(project_id="default").exists()


def test_reuses_an_existing_user_and_project():
    user = get_user_model().objects.create(username="dave")
    project = Project.objects.create(project_id="shared", name="Shared")
    _token, _stdout, stderr = create_token("dave", "--project", "shared", "--name", "ci")
    assert get_user_model().objects.filter(username="dave").count() == 1
    assert Project.objects.filter(project_id="shared").count() == 1
    assert project.members.filter(pk=user.pk).exists()
    assert stderr == ""
    assert ApiToken.objects.get(user=user).name == "ci"


def test_prints_the_token_alone_on_the_last_line():
    token, stdout, _stderr = create_token("carol", "--project", "p1")
    assert stdout.endswith(token + "\n")
    assert stdout.splitlines()[-1] == token
    assert token == token.strip() and " " not in token
    # The notes about what was created go to stderr, so `$(manage.py create_token x)` is the token.
    assert stdout == token + "\n"


def test_the_token_authenticates():
    token, _stdout, _stderr = create_token("carol", "--project", "p1")
    found = ApiToken.objects.for_key(token)
    assert found is not None
    assert found.user.username == "carol"
    assert found.project.project_id == "p1"
    assert token_for(token).pk == found.pk


def test_only_the_hash_is_stored():
    token, _stdout, _stderr = create_token("carol", "--project", "p1")
    row = ApiToken.objects.get()
    assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.prefix == token[:8]
    stored = " ".join(str(value) for value in ApiToken.objects.values().get().values())
    assert token not in stored


def test_each_run_issues_a_new_token():
    first, _, _ = create_token("carol", "--project", "p1")
    second, _, _ = create_token("carol", "--project", "p1")
    assert first != second
    assert ApiToken.objects.count() == 2
    assert ApiToken.objects.for_key(first).pk != ApiToken.objects.for_key(second).pk


def test_a_wrong_token_does_not_authenticate():
    token, _stdout, _stderr = create_token("carol", "--project", "p1")
    assert ApiToken.objects.for_key(token[:-1] + ("A" if token[-1] != "A" else "B")) is None


@pytest.mark.parametrize("project_id", ["bad id", "a/b", "x" * 65, "proj!", "ü"])
def test_invalid_project_is_refused(project_id):
    with pytest.raises(CommandError, match="--project"):
        create_token("carol", "--project", project_id)
    assert not get_user_model().objects.filter(username="carol").exists()
    assert not Project.objects.exists()
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("username", ["", "has space", "semi;colon"])
def test_invalid_username_is_refused(username):
    with pytest.raises(CommandError):
        create_token(username, "--project", "p1")
    assert not get_user_model().objects.exists()
    assert not Project.objects.exists()
