"""`manage.py import_study ARCHIVE.zip` treats the archive as untrusted (issue 31): every record
is checked as the forms and the API check it, and archived people become accounts here only as
the person restoring says."""

from __future__ import annotations

import io
import json
import math
import zipfile

import pytest
from django.core.management import call_command
from django.urls import reverse

from metrics.models import MetricValue
from readerstudy.archive import write_archive
from readerstudy.models import Reader, Score, Study
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def archive(tmp_path):
    """A scored study's archive, its study deleted as on a server that never had it; the
    archived reader "dr-lee" and researcher "lead" keep accounts here (plain ones)."""
    study = StudyFactory(
        slug="knee",
        title="Knee",
        window_presets=[{"name": "Soft tissue", "level": 30.0, "width": 60.0}],
    )
    case = CaseFactory(study=study)
    for _ in range(3):
        ReconstructionFactory(case=case)
    study.researchers.add(UserFactory(username="lead"))
    reader = study.assign_reader(UserFactory(username="dr-lee"))
    for item in reader.assignments.all():
        item.save_scores({q.key: 3 for q in study.questions.all()}, seconds_spent=4.0)
    reconstruction = case.reconstructions.first()
    MetricValue.objects.create(
        reconstruction=reconstruction, metric="psnr", version="1", value=math.inf
    )
    path = tmp_path / "knee.zip"
    path.write_bytes(write_archive(study).read())
    study.delete()
    UserFactory(username="admin")
    return path


def tampered(path, change) -> str:
    """The archive with study.json changed by `change(record)`."""
    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}
    record = json.loads(members["study.json"])
    change(record)
    members["study.json"] = json.dumps(record).encode()
    out = path.with_name("tampered.zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    out.write_bytes(buffer.getvalue())
    return str(out)


def restore(path, capsys, *args) -> tuple[int, str]:
    try:
        call_command("import_study", str(path), *args)
    except SystemExit as exited:
        return int(exited.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_an_account_that_shares_an_archived_researchers_name_gets_no_rights(archive, capsys):
    code, err = restore(archive, capsys, "--researcher", "admin")
    assert code == 0, err
    study = Study.objects.get(slug="knee")
    assert list(study.researchers.values_list("username", flat=True)) == ["admin"]
    assert "archived researcher 'lead' was given no rights here" in err


def test_an_account_that_shares_an_archived_readers_name_is_not_given_their_scores(
    archive, capsys
):
    code, err = restore(archive, capsys, "--researcher", "admin")
    assert code == 0, err
    reader = Reader.objects.get(study__slug="knee")
    assert reader.user.username == "dr-lee-restored" and not reader.user.has_usable_password()
    assert "an account here is called 'dr-lee' already" in err
    assert not Score.objects.filter(assignment__reader__user__username="dr-lee").exists()


def test_the_window_presets_are_restored_and_malformed_ones_refused(archive, capsys):
    code, err = restore(archive, capsys, "--researcher", "admin")
    assert code == 0, err
    restored = Study.objects.get(slug="knee").window_presets
    assert restored == [{"name": "Soft tissue", "level": 30.0, "width": 60.0}]
    Study.objects.get(slug="knee").delete()
    wide = tampered(archive, lambda r: r["study"]["window_presets"][0].update(width=1e9))
    code, err = restore(wide, capsys, "--researcher", "admin")
    assert code == 2 and "width must be above 0 and at most 400" in err
    assert not Study.objects.filter(slug="knee").exists()


def test_map_user_gives_an_archived_readers_scores_to_the_account_named(archive, capsys):
    code, err = restore(archive, capsys, "--researcher", "admin", "--map-user", "dr-lee=dr-lee")
    assert code == 0, err
    assert Reader.objects.get(study__slug="knee").user.username == "dr-lee"
    assert Score.objects.filter(assignment__reader__user__username="dr-lee").count() == 12


def test_the_restore_names_who_runs_it_and_refuses_unknown_or_reading_accounts(archive, capsys):
    code, err = restore(archive, capsys)
    assert code == 2 and "--researcher NAME" in err and "createsuperuser" in err
    code, err = restore(archive, capsys, "--researcher", "nobody")
    assert code == 2 and "no account is called 'nobody' here" in err
    code, err = restore(archive, capsys, "--researcher", "admin", "--map-user", "dr-lee=admin")
    assert code == 2 and "would both read and run the study" in err
    code, err = restore(archive, capsys, "--researcher", "admin", "--map-user", "dr-le=dr-lee")
    assert code == 2 and "the archive has no reader 'dr-le'" in err
    assert not Study.objects.filter(slug="knee").exists()


def test_a_dry_run_reports_and_stores_nothing(archive, capsys, settings):
    files = sorted(settings.MEDIA_ROOT.rglob("*.npy"))
    code, err = restore(archive, capsys, "--dry-run", "--researcher", "admin")
    assert code == 0 and "dr-lee-restored" in err
    assert not Study.objects.filter(slug="knee").exists()
    assert not Reader.objects.exists() and sorted(settings.MEDIA_ROOT.rglob("*.npy")) == files


def test_an_infinite_metric_value_is_archived_and_restored(archive, capsys):
    with zipfile.ZipFile(archive) as source:
        (entry,) = json.loads(source.read("study.json"))["metric_values"]
    assert entry["value"] == "inf"
    assert restore(archive, capsys, "--researcher", "admin")[0] == 0
    assert MetricValue.objects.get(reconstruction__case__study__slug="knee").value == math.inf


def test_the_archive_of_a_study_with_an_infinite_value_downloads(client):
    study = StudyFactory()
    lead = UserFactory()
    study.researchers.add(lead)
    reconstruction = ReconstructionFactory(case=CaseFactory(study=study))
    MetricValue.objects.create(
        reconstruction=reconstruction, metric="psnr", version="1", value=math.inf
    )
    client.force_login(lead)
    response = client.get(reverse("readerstudy:archive", args=[study.slug]))
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as downloaded:
        assert json.loads(downloaded.read("study.json"))["metric_values"][0]["value"] == "inf"


def first_score(record):
    return record["scores"][0]


HOSTILE = {
    "score-off-scale": (
        lambda r: first_score(r).update(value=99),
        "value 99 is outside the scale 1-5",
    ),
    "negative-score": (lambda r: first_score(r).update(value=-1), "value -1 is outside the scale"),
    "score-as-text": (lambda r: first_score(r).update(value="3"), "is not a whole number"),
    "negative-seconds": (
        lambda r: first_score(r).update(seconds_spent=-5),
        "is not within 0-86400 seconds",
    ),
    "infinite-seconds": (
        lambda r: first_score(r).update(seconds_spent=float("inf")),
        "is not within 0-86400 seconds",
    ),
    "nul-in-label": (
        lambda r: r["questions"][0].update(label="Over\x00all"),
        "Null characters are not allowed",
    ),
    "override-in-label": (
        lambda r: r["questions"][0].update(label="\u202eevil"),
        "contains the control character U+202E",
    ),
    "formula-key": (lambda r: r["questions"][0].update(key="=cmd|' /C calc'!A0"), "question 1"),
    "nan-repeat-share": (lambda r: r["study"].update(repeat_share=float("nan")), "repeat_share"),
    "repeat-share-too-high": (lambda r: r["study"].update(repeat_share=0.9), "repeat_share"),
    "unknown-status": (lambda r: r["study"].update(status="deleted"), "study status"),
    "duplicate-score": (lambda r: r["scores"].append(dict(first_score(r))), "a second answer"),
    "bad-reader-name": (
        lambda r: (r["readers"][0].update(username="a b/c"), first_score(r)),
        "is not a user name",
    ),
    "metric-value-text": (
        lambda r: r["metric_values"][0].update(value="lots"),
        "is not a number",
    ),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_record_no_form_or_api_accepts_is_refused_and_nothing_is_stored(
    archive, capsys, settings, name
):
    change, message = HOSTILE[name]
    files = sorted(settings.MEDIA_ROOT.rglob("*.npy"))
    code, err = restore(tampered(archive, change), capsys, "--researcher", "admin")
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err and "IntegrityError" not in err
    assert not Study.objects.filter(slug="knee").exists()
    assert sorted(settings.MEDIA_ROOT.rglob("*.npy")) == files, "no image stays"


def test_values_at_this_servers_versions_are_kept_and_only_the_rest_is_queued(
    tmp_path, capsys, django_capture_on_commit_callbacks
):
    from metrics.tasks import compute_case_metrics

    study = StudyFactory(slug="kept", title="Kept")
    for _ in range(2):
        case = CaseFactory(study=study)
        ReconstructionFactory(case=case)
        compute_case_metrics(case_pk=case.pk)  # every configured metric, current versions
    path = tmp_path / "kept.zip"
    path.write_bytes(write_archive(study).read())
    values = sorted(MetricValue.objects.values_list("metric", "version", "value"))
    study.delete()
    UserFactory(username="admin")
    with django_capture_on_commit_callbacks() as queued:
        code, err = restore(path, capsys, "--researcher", "admin")
    assert code == 0 and "metrics queued for 0 of 2 case(s)" in err, err
    assert queued == [], "nothing recomputed"
    assert sorted(MetricValue.objects.values_list("metric", "version", "value")) == values
    Study.objects.get(slug="kept").delete()

    def drop_one(record):
        record["metric_values"].pop()

    with django_capture_on_commit_callbacks() as queued:
        code, err = restore(tampered(path, drop_one), capsys, "--researcher", "admin")
    assert code == 0 and "metrics queued for 1 of 2 case(s)" in err, err
    assert len(queued) == 1
