from django.contrib import admin

from readerstudy.models import (
    Assignment,
    Case,
    Invitation,
    Question,
    Reader,
    Reconstruction,
    Score,
    ScoreRevision,
    Study,
    StudyImport,
)


class QuestionInline(admin.TabularInline):
    model = Question
    extra = 0


class ReaderInline(admin.TabularInline):
    model = Reader
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "status", "presentation", "created_at"]
    list_filter = ["status", "presentation"]
    search_fields = ["title", "slug"]
    prepopulated_fields = {"slug": ["title"]}
    filter_horizontal = ["researchers"]
    inlines = [QuestionInline, ReaderInline]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Readers added here get their own random order, as assign_reader draws it.
        study = form.instance
        for reader in study.readers.select_related("user"):
            study.assign_reader(reader.user)


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["name", "study", "anatomy", "shape"]
    list_filter = ["study", "anatomy"]
    search_fields = ["name", "source"]


@admin.register(Reconstruction)
class ReconstructionAdmin(admin.ModelAdmin):
    list_display = ["public_id", "case", "method", "acceleration"]
    list_filter = ["case__study", "method", "acceleration"]
    search_fields = ["public_id", "case__name", "source_name"]
    readonly_fields = ["public_id"]


@admin.register(Reader)
class ReaderAdmin(admin.ModelAdmin):
    list_display = ["user", "study", "joined_at"]
    list_filter = ["study"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        obj.study.assign_reader(obj.user)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["reader", "position", "reconstruction"]
    list_filter = ["reader__study", "reader__user"]


class ScoreRevisionInline(admin.TabularInline):
    model = ScoreRevision
    fields = readonly_fields = (
        "recorded_at",
        "recorded_by",
        "previous_value",
        "value",
        "seconds_spent",
    )
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    """Read-only: a score is its reader's answer, and changing it here would bypass the audit
    trail that Assignment.save_scores keeps."""

    list_display = ["assignment", "question", "value", "seconds_spent", "updated_at"]
    list_filter = ["question__study", "question__key", "assignment__reader__user"]
    inlines = [ScoreRevisionInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """For staff: who was invited when and whether the link was used (tokens are not stored)."""

    list_display = ["study", "note", "email", "created_at", "expires_at", "used_at", "used_by"]
    list_filter = ["study"]
    readonly_fields = ["digest", "created_by", "created_at", "used_at", "used_by"]


@admin.register(StudyImport)
class StudyImportAdmin(admin.ModelAdmin):
    """For staff: every upload's outcome, read-only (imports run only through the task)."""

    list_display = ["study", "state", "created_by", "created_at", "cases_added"]
    list_filter = ["state", "study"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
