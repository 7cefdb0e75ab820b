from django.contrib import admin

from metrics.models import MetricValue, WorkerMetric


@admin.register(MetricValue)
class MetricValueAdmin(admin.ModelAdmin):
    list_display = [
        "reconstruction",
        "metric",
        "value",
        "error",
        "version",
        "device",
        "computed_at",
    ]
    list_filter = ["metric", "version", "device", "reconstruction__case__study"]
    search_fields = ["reconstruction__public_id", "reconstruction__case__name", "error"]


@admin.register(WorkerMetric)
class WorkerMetricAdmin(admin.ModelAdmin):
    """What the metrics workers last said they compute: read-only, the workers write it."""

    list_display = ["metric", "version", "reported_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
