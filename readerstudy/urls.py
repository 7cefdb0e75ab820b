from django.urls import path

from readerstudy import lab_views, researcher_views, views

app_name = "readerstudy"
urlpatterns = [
    path("", views.StudyList.as_view(), name="home"),
    path("studies/new/", views.NewStudy.as_view(), name="new-study"),
    path("studies/<slug:slug>/", views.StudyDetail.as_view(), name="detail"),
    path("studies/<slug:slug>/setup/", researcher_views.study_setup, name="setup"),
    path("studies/<slug:slug>/images/", researcher_views.study_images, name="images"),
    path("studies/<slug:slug>/people/", researcher_views.study_people, name="people"),
    path("studies/<slug:slug>/status/", researcher_views.study_status, name="status"),
    path(
        "studies/<slug:slug>/metrics/retry/",
        researcher_views.retry_failed_metrics,
        name="retry-metrics",
    ),
    path("studies/<slug:slug>/archive.zip", researcher_views.study_archive, name="archive"),
    path("studies/<slug:slug>/lab/", lab_views.start_lab, name="lab-start"),
    path("studies/<slug:slug>/lab.json", lab_views.lab_status, name="lab-status"),
    path("invite/<slug:token>/", researcher_views.accept_invitation, name="invitation"),
    path("read/<slug:slug>/", views.ReadingPage.as_view(), name="read"),
    path("studies/<slug:slug>/export/<str:kind>.csv", views.study_export, name="export"),
    path("studies/<slug:slug>/score-history/", views.ScoreHistory.as_view(), name="score-history"),
    path("studies/<slug:slug>/dashboard/", views.Dashboard.as_view(), name="dashboard"),
    path(
        "studies/<slug:slug>/dashboard/metric-agreement.csv",
        views.dashboard_table,
        name="dashboard-table",
    ),
    path(
        "studies/<slug:slug>/reconstructions/<slug:public_id>/<str:which>.png",
        views.reconstruction_preview,
        name="preview",
    ),
    path("items/<slug:public_id>/<str:which>.dcm", views.item_image, name="item-image"),
]
