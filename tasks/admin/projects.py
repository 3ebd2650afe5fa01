"""Projects and their API tokens."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tasks.models import ApiToken, Project
from vias.lib.admin import TenantAdminMixin


@admin.register(Project)
class ProjectAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("project_id", "name", "task_count", "member_count", "created_at")
    search_fields = ("project_id", "name")
    filter_horizontal = ("members",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                task_total=Count("tasks", distinct=True),
                member_total=Count("members", distinct=True),
            )
        )

    @admin.display(description=gettext_lazy("tasks"), ordering="task_total")
    def task_count(self, obj: Any) -> int:
        return obj.task_total

    @admin.display(description=gettext_lazy("members"), ordering="member_total")
    def member_count(self, obj: Any) -> int:
        return obj.member_total


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "project", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "project", "created_at", "last_used_at")
    list_select_related = ("user", "project")
    list_filter = ("project",)
    search_fields = ("prefix", "name", "user__username", "project__project_id")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    form = ApiTokenForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        tokens = super().get_queryset(request)
        # A token acts as its user: an operator sees, and makes, only their own.
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = get_user_model().objects.filter(pk=cast(int, request.user.pk))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (
            ("user", "project", "name") if obj is None else ("user", "project", "name", *self.readonly_fields)
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            return super().save_model(request, obj, form, change)
        # ApiToken.issue is what `manage.py create_token` calls: the raw key is shown once, never stored.
        token, raw = ApiToken.issue(obj.user, obj.project, obj.name)
        obj.pk, obj.prefix, obj.key_hash, obj.created_at = (
            token.pk,
            token.prefix,
            token.key_hash,
            token.created_at,
        )
        obj._state.adding = False
        messages.warning(request, _("The new token (shown only now, copy it): %(raw)s") % {"raw": raw})
