from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps  # not its class: one default AppConfig here


class ViasConfig(AppConfig):
    """Project wiring as an app, so that its management commands (up, create_token) are found."""

    default = True
    name = "vias"
    verbose_name = "VIAS"


class VIASAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the operator's site (vias/admin_site.py) as the default site."""

    default = False  # not this module's config for the "vias" app (that is ViasConfig)
    default_site = "vias.admin_site.VIASAdminSite"
