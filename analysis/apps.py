from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalysisConfig(AppConfig):
    name = "analysis"
    verbose_name = _("Analysis")

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from analysis.orphans import guard_worker

        # A node's workers die with the node (analysis/orphans.py).
        post_spawn.connect(guard_worker, dispatch_uid="vias-guard-worker")
