"""Tenancy, once: every row belongs to a project, and one queryset method says which rows a
project or a user may see. API views, websocket consumers and admin querysets all use it.

A model's queryset names the lookup from its rows to their project (`project_path`); a user sees
the rows of the projects they are a member of (`members` on the project), a superuser sees all.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from django.db import models


class TenantQuerySet(models.QuerySet):
    """Rows of one project (`for_project`) or of the projects a user belongs to (`visible_to`)."""

    # The lookup from a row to its project ("" for the project model itself).
    project_path: ClassVar[str] = "project"
    # The lookup from a project to its members.
    member_path: ClassVar[str] = "members"

    def _lookup(self, tail: str) -> str:
        return f"{self.project_path}__{tail}" if self.project_path else tail

    def for_project(self, project: Any) -> Self:
        return self.filter(**{self._lookup("pk"): project.pk})

    def visible_to(self, user: Any) -> Self:
        if getattr(user, "is_superuser", False):
            return self
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(**{self._lookup(self.member_path): user})
