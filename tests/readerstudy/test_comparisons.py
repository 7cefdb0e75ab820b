"""Rank and forced-choice questions through the real models, API, setup page, exports and
`manage.py analyze` (issue 20)."""

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from django.urls import reverse
from scipy.stats import chisquare, kendalltau

from readerstudy.export import RANKING_COLUMNS, history_rows, ranking_rows, score_rows
from readerstudy.models import Assignment, Comparison, Question, Score, ScoreRevision
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
)
from tests.readerstudy.test_analyze_command import run

pytestmark = pytest.mark.django_db


def comparison_study(cases=2, per_case=3, **rank_options):
    study = StudyFactory()
    for number in range(cases):
        case = CaseFactory(study=study, name=f"case-{number}")
        for k in range(per_case):
            ReconstructionFactory(case=case, method=f"m{k}", acceleration=2.0 + k)
    Question.objects.create(study=study, key="rank", label="Rank", kind="rank", **rank_options)
    Question.objects.create(
        study=study, key="pick", label="Pick", kind="choice", allow_ties=True, position=1
    )
    return study


def test_every_reader_gets_every_comparison_once_in_a_layout_of_its_members():
    study = comparison_study()
    readers = [study.assign_reader(UserFactory()) for _ in range(3)]
    comparisons = Comparison.objects.filter(question__study=study)
    assert comparisons.filter(question__key="rank").count() == 2
    assert comparisons.filter(question__key="pick").count() == 2 * 3  # every pair
    for reader in readers:
        items = reader.assignments.order_by("position")
        positions = list(items.values_list("position", flat=True))
        assert positions == list(range(1, len(positions) + 1))
        # 6 reconstructions scored alone on the Likert questions, 2 rankings, 6 pairs.
        assert items.filter(reconstruction__isnull=False).count() == 6
        for item in items.filter(comparison__isnull=False):
            members = set(item.comparison.members.values_list("pk", flat=True))
            assert sorted(item.layout) == sorted(members) and len(item.layout) == len(members)
    assert study.build_comparisons() == 0, "drawn once"


def test_left_to_right_layouts_are_uniform_over_readers():
    """Where a comparison's members land on screen is each reader's own draw: over 1,200
    readers, each of 3 members is leftmost a third of the time (chi-square, p > 0.001)."""
    study = comparison_study(cases=1)
    Question.objects.filter(key="pick").delete()
    rng = np.random.default_rng(7)
    leftmost = Counter()
    reader = study.assign_reader(UserFactory())
    comparison = Comparison.objects.get(question__key="rank")
    for _ in range(1200):
        Assignment.objects.filter(reader=reader, comparison=comparison).delete()
        reader.extend_order(rng)
        leftmost[reader.assignments.get(comparison=comparison).layout[0]] += 1
    assert len(leftmost) == 3 and chisquare(list(leftmost.values())).pvalue > 0.001


def test_ranks_are_checked_and_stored_with_their_revisions():
    study = comparison_study(cases=1)
    reader = study.assign_reader(UserFactory())
    ranking = reader.assignments.get(comparison__question__key="rank")
    pick = reader.assignments.filter(comparison__question__key="pick").first()
    for bad, says in [
        ([1, 2], "list of 3 ranks"),
        ([1, 1, 3], "equal ranks is not allowed"),
        ([0, 1, 2], "from 1 to 3"),
        ([True, 2, 3], "from 1 to 3"),
        ("1,2,3", "list of 3 ranks"),
    ]:
        response = _put(reader, ranking, {"rank": bad})
        assert response.status_code == 400 and says in json.dumps(response.json()), bad
    assert _put(reader, ranking, {"overall": 3}).status_code == 400, "not asked of a ranking"
    assert "not asked of this item" in json.dumps(_put(reader, ranking, {"pick": [1, 2]}).json())
    assert not Score.objects.exists()
    assert _put(reader, ranking, {"rank": [3, 1, 2]}).json()["scores"] == {"rank": [3, 1, 2]}
    assert _put(reader, ranking, {"rank": [3, 1, 2]}).status_code == 200  # a retry: no edit
    _put(reader, ranking, {"rank": [2, 1, 3]})
    assert _put(reader, pick, {"pick": [1, 1]}).status_code == 200, "no difference allowed"
    score = Score.objects.get(assignment=ranking)
    assert score.value is None and score.ranks == [2, 1, 3]
    trail = list(ScoreRevision.objects.filter(score=score).values_list("previous_ranks", "ranks"))
    assert trail == [(None, [3, 1, 2]), ([3, 1, 2], [2, 1, 3])]
    history = [row for row in history_rows(study) if row["question"] == "rank"]
    assert [row["value"] for row in history] == ["2 1 3", "3 1 2"]
    assert not list(score_rows(study)), "rankings are not Likert scores"


def _put(reader, item, scores):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(reader.user)
    return client.put(
        reverse("api:item-scores", args=[item.public_id]), {"scores": scores}, format="json"
    )


def test_a_comparison_item_names_its_images_by_place_only(client):
    study = comparison_study(cases=1)
    # Names no random id can hold by chance ("m2" once turned up inside a public id).
    for k, reconstruction in enumerate(study.cases.get().reconstructions.all()):
        reconstruction.method = f"secret-method-{k}"
        reconstruction.save(update_fields=["method"])
    reader = study.assign_reader(UserFactory())
    other = study.assign_reader(UserFactory())
    ranking = reader.assignments.get(comparison__question__key="rank")
    client.force_login(reader.user)
    item = client.get(reverse("api:item", args=[ranking.public_id])).json()
    assert item["kind"] == "rank" and item["slices"] == 1
    assert item["images"]["reconstruction"] is None
    assert [url.rsplit("/", 1)[1] for url in item["images"]["reconstructions"]] == [
        "slot-1.dcm",
        "slot-2.dcm",
        "slot-3.dcm",
    ]
    assert [q["key"] for q in item["questions"]] == ["rank"] and item["scores"] == {}
    text = json.dumps(item)
    for reconstruction in study.cases.get().reconstructions.all():
        assert reconstruction.public_id not in text and reconstruction.method not in text
    image = reverse("readerstudy:item-image", args=[ranking.public_id, "slot-3"])
    assert client.get(image).status_code == 200
    for missing in ("slot-4", "slot-0", "reconstruction"):
        url = reverse("readerstudy:item-image", args=[ranking.public_id, missing])
        assert client.get(url).status_code == 404, missing
    client.force_login(other.user)
    assert client.get(image).status_code == 404, "another reader's item"


def test_the_setup_page_adds_a_ranking_and_redraws_it_when_its_design_changes(client):
    study = comparison_study(cases=2, per_case=5)
    Question.objects.filter(study=study, kind__in=["rank", "choice"]).delete()
    lead = UserFactory()
    study.researchers.add(lead)
    reader = study.assign_reader(UserFactory())
    client.force_login(lead)
    url = reverse("readerstudy:setup", args=[study.slug])
    from tests.readerstudy.test_researcher_pages import question_post

    data = question_post(study)
    new = len(study.questions.all())
    data |= {
        f"q-{new}-label": "Rank by quality",
        f"q-{new}-kind": "rank",
        f"q-{new}-set_size": "9",
        f"q-{new}-ORDER": str(new + 1),
    }
    bad = client.post(url, data)
    assert bad.status_code == 200 and f'id="q-{new}-set_size-error"' in bad.content.decode()
    data[f"q-{new}-set_size"] = "3"
    assert client.post(url, data).status_code == 302
    question = study.questions.get(kind="rank")
    sets = Comparison.objects.filter(question=question)
    # 5 reconstructions in sets of at most 3, each ranked twice: 4 sets per case.
    assert sets.count() == 2 * 4
    assert reader.assignments.filter(comparison__question=question).count() == 8
    data = question_post(study)
    index = [q.pk for q in study.questions.order_by("position")].index(question.pk)
    data |= {f"q-{index}-kind": "rank", f"q-{index}-set_size": "5"}
    response = client.post(url, data)
    assert response.status_code == 302, response.context["formset"].errors
    assert Comparison.objects.filter(question=question).count() == 2, "one set per case now"
    assert reader.assignments.filter(comparison__question=question).count() == 2
    positions = list(reader.assignments.values_list("position", flat=True).order_by("position"))
    assert positions == list(range(1, 10 + 2 + 1))


def test_exported_rankings_analysed_by_the_command_match_independent_figures(tmp_path):
    """A study's rankings export, fed to `manage.py analyze --rankings`, gives the
    concordance (1 + Kendall's tau)/2 of scipy per ranking, and each case's Plackett-Luce
    strengths equal choix fitted directly on the rankings."""
    import choix

    study = comparison_study(cases=4, per_case=4, set_size=4)
    Question.objects.filter(key="pick").delete()
    rng = np.random.default_rng(3)
    readers = [study.assign_reader(UserFactory(username=f"r{k}")) for k in range(3)]
    for reader in readers:
        for item in reader.assignments.filter(comparison__isnull=False):
            item.save_scores({"rank": (rng.permutation(4) + 1).tolist()})
    quality = {
        r.public_id: float(rng.normal())
        for c in study.cases.all()
        for r in c.reconstructions.all()
    }
    metrics = pd.DataFrame(
        [(pid, "mymetric", value) for pid, value in quality.items()],
        columns=["reconstruction", "metric", "value"],
    )
    rows = pd.DataFrame(list(ranking_rows(study)), columns=RANKING_COLUMNS)
    assert len(rows) == 3 * 4 * 4 and set(rows["kind"]) == {"rank"}
    rows.to_csv(tmp_path / "rankings.csv", index=False)
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    result = run(
        "--rankings",
        tmp_path / "rankings.csv",
        "--metrics",
        tmp_path / "metrics.csv",
        "--polarity",
        "mymetric=+1",
        "--bootstrap",
        "200",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    block = json.loads(result.stdout)["preferences"]["rank"]
    taus = [
        (1 + kendalltau(group["reconstruction"].map(quality), -group["rank"]).statistic) / 2
        for _, group in rows.groupby(["reader", "case"])
    ]
    row = block["metrics"]["mymetric"]
    assert row["concordance"] == pytest.approx(np.mean(taus), abs=1e-12)
    low, high = row["concordance_ci"]
    assert low <= row["concordance"] <= high and block["n_pairs"] == 3 * 4 * 6
    scale = pd.DataFrame(block["scale"])
    for case, group in rows.groupby("case"):
        items = sorted(group["reconstruction"].unique())
        data = [
            [items.index(r) for r in ranking.sort_values("rank")["reconstruction"]]
            for _, ranking in group.groupby("reader")
        ]
        # A ranking is one Plackett-Luce observation, not its pairs (issue 32).
        direct = choix.opt_rankings(len(items), data, alpha=0.01, tol=1e-10)
        direct -= direct.mean()
        mine = scale[scale["case"] == case].set_index("reconstruction")["strength"]
        np.testing.assert_allclose(mine[items].to_numpy(), direct, atol=1e-6)
    assert 0 <= block["kendalls_w"] <= 1 and block["n_sets"] == 4


def test_analyze_rankings_refuses_a_broken_file(tmp_path):
    (tmp_path / "metrics.csv").write_text("reconstruction,metric,value\na,psnr,30\n")
    (tmp_path / "rankings.csv").write_text(
        "reader,question,case,set,reconstruction,rank\nr,q,c,1,a,first\n"
    )
    result = run("--rankings", tmp_path / "rankings.csv", "--metrics", tmp_path / "metrics.csv")
    assert result.returncode == 2 and "line 2" in result.stderr and "first" in result.stderr
    (tmp_path / "rankings.csv").write_text("reader,case,rank\n")
    result = run("--rankings", tmp_path / "rankings.csv", "--metrics", tmp_path / "metrics.csv")
    assert result.returncode == 2 and "missing column" in result.stderr
    result = run("--metrics", tmp_path / "metrics.csv")
    assert result.returncode == 2 and "--scores, --rankings or --repeats" in result.stderr
