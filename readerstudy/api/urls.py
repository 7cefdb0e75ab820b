from django.urls import path

from readerstudy.api import views

app_name = "api"
urlpatterns = [
    path("studies/", views.ReaderStudyList.as_view(), name="studies"),
    path("studies/<slug:slug>/next/", views.NextItem.as_view(), name="next-item"),
    path("studies/<slug:slug>/analysis/", views.StudyAnalysis.as_view(), name="analysis"),
    path("studies/<slug:slug>/imports/", views.StudyImports.as_view(), name="imports"),
    path(
        "studies/<slug:slug>/imports/<int:pk>/",
        views.StudyImportDetail.as_view(),
        name="import-detail",
    ),
    path("items/<slug:public_id>/", views.ItemDetail.as_view(), name="item"),
    path("items/<slug:public_id>/scores/", views.ItemScores.as_view(), name="item-scores"),
]
