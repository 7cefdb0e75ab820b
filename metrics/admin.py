from django.contrib import admin

from metrics.models import MetricValue


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
