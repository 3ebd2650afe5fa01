"""manage.py create_token USERNAME [--project PROJECT_ID]: a new API token, printed alone on the last line."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Field

from tasks.models import ApiToken, Project
from tasks.validators import validate_project_id


class Command(BaseCommand):
    help = "Create an API token for USERNAME in a project (both created if missing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--project", default="default", help="project id (default: 'default')")
        parser.add_argument("--name", default="", help="a label for the token")

    @transaction.atomic
    def handle(self, *args, username: str, project: str, name: str, **options) -> None:
        try:
            validate_project_id(project)
        except ValidationError as exc:
            raise CommandError(f"--project: {exc.messages[0]}") from None
        user_model = get_user_model()
        try:
            username_field = user_model._meta.get_field(user_model.USERNAME_FIELD)
            assert isinstance(username_field, Field)
            username_field.run_validators(username)
            if not username:
                raise ValidationError("a username is required")
        except ValidationError as exc:
            raise CommandError(f"USERNAME: {exc.messages[0]}") from None
        lookup: dict[str, Any] = {user_model.USERNAME_FIELD: username}
        user, created_user = user_model.objects.get_or_create(**lookup)
        if created_user:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        proj, created_project = Project.objects.get_or_create(project_id=project, defaults={"name": project})
        proj.members.add(user)
        _token, raw = ApiToken.issue(user, proj, name=name)
        if created_user:
            self.stderr.write(f"created user {username}")
        if created_project:
            self.stderr.write(f"created project {project}")
        self.stdout.write(raw)
