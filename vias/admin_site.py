"""The operator's admin site: "VIAS" branding, the dashboard on the index, the console pages
(analysis/admin/console.py) under /admin/console/, and Django's internals out of the way.

Installed as Django's default admin site (vias.apps.VIASAdminConfig replaces
"django.contrib.admin" in INSTALLED_APPS), so every `@admin.register` lands here.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

# Shown last; Django Q's queue tables and auth's groups are hidden from the index and the sidebar
# (their pages still answer for a superuser: the System page links Django Q's failures).
APP_ORDER = ("tasks", "subtasks", "analysis", "auth")
HIDDEN_APPS = {"django_q"}
HIDDEN_MODELS = {("auth", "Group")}
# Shown by Django 5.2's admin templates (the app list's headers for screen readers) but not yet
# in Django's own zh_Hans catalogue: listed here so that makemessages puts them in ours.
DJANGO_ADMIN_STRINGS = (
    gettext_noop("Model name"),
    gettext_noop("Add link"),
    gettext_noop("Change or view list link"),
    # Django's add-user page (5.1+), and Django Q's list filters, untranslated upstream.
    gettext_noop("After you’ve created a user, you’ll be able to edit more user options."),
    gettext_noop(
        "Whether the user will be able to authenticate using a password or not. "
        "If disabled, they may still be able to authenticate using other backends, "
        "such as Single Sign-On or LDAP."
    ),
    gettext_noop("Group"),
    gettext_noop("Cluster"),
)


class VIASAdminSite(admin.AdminSite):
    site_header = "VIAS"
    site_title = "VIAS"
    index_title = _("Dashboard")
    site_url = "/admin/"  # "View site" opens the dashboard, not the API's 404
    index_template = "admin/vias_index.html"

    def get_urls(self):
        from analysis.admin import console

        return [*console.urls(), *super().get_urls()]

    def index(self, request, extra_context=None):
        from analysis.admin import console

        return super().index(request, {**(extra_context or {}), "dashboard": console.dashboard(request)})

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        shown = []
        for app in apps:
            if app["app_label"] in HIDDEN_APPS:
                continue
            app["models"] = [
                m for m in app["models"] if (app["app_label"], m["object_name"]) not in HIDDEN_MODELS
            ]
            if app["models"]:
                shown.append(app)
        rank = {label: i for i, label in enumerate(APP_ORDER)}
        return sorted(shown, key=lambda app: rank.get(app["app_label"], len(rank)))
