"""Study export (docs/interfaces.md sections 2-3): the command and the researcher's downloads."""

import csv
import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from metrics.engine import metric_version
from metrics.models import MetricValue
from readerstudy.export import METRIC_COLUMNS, SCORE_COLUMNS
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    study = StudyFactory(slug="knee")
    recon = ReconstructionFactory(
        case__study=study, case__name="=HYPERLINK(1)", method="cs-tv", acceleration=4
    )
    reader = UserFactory(username="reader-a")
    item = study.assign_reader(reader).assignments.get()
    item.save_scores({"overall": 4, "snr": 2}, seconds_spent=6.5)
    MetricValue.objects.create(
        reconstruction=recon, metric="psnr", version=metric_version("psnr"), value=31.5
    )
    MetricValue.objects.create(
        reconstruction=recon, metric="psnr", version="old-convention", value=1.0
    )
    MetricValue.objects.create(
        reconstruction=recon, metric="ssim", version=metric_version("ssim"), error="failed"
    )
    researcher = UserFactory(username="lead")
    study.researchers.add(researcher)
    return study, recon, reader, researcher


def read(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_export_command_writes_both_files(study, tmp_path):
    knee, recon, _, _ = study
    call_command("export_study", "knee", scores=tmp_path / "s.csv", metrics=tmp_path / "m.csv")
    scores = read((tmp_path / "s.csv").read_text())
    assert list(scores[0]) == SCORE_COLUMNS
    assert {(r["reader"], r["question"], r["score"]) for r in scores} == {
        ("reader-a", "overall", "4"),
        ("reader-a", "snr", "2"),
    }
    row = scores[0]
    assert row["study"] == "knee" and row["method"] == "cs-tv" and row["acceleration"] == "4.0"
    assert (
        row["reconstruction"] == recon.public_id
        and row["duration_s"] == "6.5"
        and row["scored_at"]
    )
    assert row["case"] == "'=HYPERLINK(1)", "formulas in text cells are neutralised"
    metrics = read((tmp_path / "m.csv").read_text())
    assert list(metrics[0]) == METRIC_COLUMNS
    assert [(r["metric"], r["value"], r["error"]) for r in metrics] == [
        ("psnr", "31.5", ""),
        ("ssim", "", "failed"),
    ], "current versions only; a failure is a row with an empty value and its reason"


def test_export_of_an_unknown_study_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="no study 'nope'"):
        call_command("export_study", "nope", scores=tmp_path / "s.csv", metrics=tmp_path / "m.csv")


def test_researcher_downloads_and_others_get_404(client, study):
    knee, _, reader, researcher = study
    client.force_login(researcher)
    page = client.get(knee.get_absolute_url()).content.decode()
    for kind in ("scores", "metrics"):
        url = reverse("readerstudy:export", kwargs={"slug": "knee", "kind": kind})
        assert url in page
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        assert f'filename="knee-{kind}.csv"' in response["Content-Disposition"]
        assert len(read(response.content.decode())) >= 1
    for intruder in (reader, UserFactory()):
        client.force_login(intruder)
        assert (
            client.get(
                reverse("readerstudy:export", kwargs={"slug": "knee", "kind": "scores"})
            ).status_code
            == 404
        )


def test_the_study_column_is_neutralised_too(client, study):
    """import_study refuses such slugs now; one made in the admin before that still exports
    safely (it was the one column written unescaped)."""
    knee, _, _, researcher = study
    knee.slug = "-2-3"
    knee.save()
    client.force_login(researcher)
    for kind in ("scores", "metrics"):
        url = reverse("readerstudy:export", kwargs={"slug": knee.slug, "kind": kind})
        rows = read(client.get(url).content.decode())
        assert rows and {row["study"] for row in rows} == {"'-2-3"}
