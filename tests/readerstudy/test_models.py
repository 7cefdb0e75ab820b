import numpy as np
import pytest

from readerstudy.models import Assignment, Score
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def study_with_reconstructions(count=12):
    study = StudyFactory()
    case = CaseFactory(study=study)
    for _ in range(count):
        ReconstructionFactory(case=case)
    return study


def order_of(reader):
    return list(
        reader.assignments.order_by("position").values_list("reconstruction_id", flat=True)
    )


def test_assign_reader_draws_a_complete_order_once():
    study = study_with_reconstructions()
    reader = study.assign_reader(UserFactory())
    first = order_of(reader)
    assert sorted(first) == sorted(r.pk for r in ReconstructionFactory._meta.model.objects.all())
    study.assign_reader(reader.user)
    assert order_of(reader) == first, "the order is fixed once drawn"


def test_each_reader_gets_their_own_order():
    study = study_with_reconstructions(count=20)
    orders = {tuple(order_of(study.assign_reader(UserFactory()))) for _ in range(3)}
    assert len(orders) == 3, "20! orders: three readers sharing one would be a bug, not luck"


def test_late_reconstructions_are_shuffled_into_the_unscored_rest_never_before_a_score():
    study = study_with_reconstructions(count=12)
    reader = study.assign_reader(UserFactory())
    before = order_of(reader)
    items = list(reader.assignments.order_by("position"))
    # Item 3 has one answer (a half-scored item is scored): items 0-3 are fixed.
    Score.objects.create(assignment=items[3], question=study.questions.first(), value=2)
    late = [ReconstructionFactory(case=study.cases.first()).pk for _ in range(12)]
    added = reader.extend_order(np.random.default_rng(7))
    after = order_of(reader)
    assert added == 12 and sorted(after) == sorted(before + late)
    assert after[:4] == before[:4], "what was scored, and what came before it, never moves"
    assert [pk for pk in after if pk not in late] == before, "the rest keeps its order"
    slots = [after.index(pk) - 4 for pk in late]
    assert max(slots) - min(slots) > len(late) - 1, "not one block"
    positions = list(reader.assignments.order_by("position").values_list("position", flat=True))
    assert len(set(positions)) == len(positions) == 24
    assert reader.extend_order() == 0, "nothing new: nothing moves"
    assert order_of(reader) == after


def test_every_interleaving_of_late_items_is_equally_likely():
    """By simulation: one late item among 4 unscored ones lands in each of the 5 slots with
    probability 1/5 (chi-square, 10,000 draws), and 3 among 3 in each of the C(6, 3) = 20
    merges with probability 1/20."""
    from scipy.stats import chisquare

    from readerstudy.models.ordering import random_interleaving

    rng = np.random.default_rng(2026)
    draws = 10_000
    single = np.bincount(
        [next(iter(random_interleaving(4, 1, rng))) for _ in range(draws)], minlength=5
    )
    assert chisquare(single).pvalue > 0.001
    merges: dict[tuple[int, ...], int] = {}
    for _ in range(draws):
        key = tuple(sorted(random_interleaving(3, 3, rng)))
        merges[key] = merges.get(key, 0) + 1
    assert len(merges) == 20 and chisquare(list(merges.values())).pvalue > 0.001


def test_progress_counts_items_with_every_question_answered():
    study = study_with_reconstructions(count=3)
    reader = study.assign_reader(UserFactory())
    first, second = Assignment.objects.filter(reader=reader).order_by("position")[:2]
    for question in study.questions.all():
        Score.objects.create(assignment=first, question=question, value=3)
    Score.objects.create(assignment=second, question=study.questions.first(), value=4)
    assert reader.progress() == (1, 3), "a half-scored item is not done"


def test_reading_orders_of_many_readers_agree_with_each_readers_own(django_assert_num_queries):
    """The study list, the dashboard and the next-item endpoint all read ReadingOrder: one
    reader alone and ten at once give the same done, total and next item, in three queries."""
    study = study_with_reconstructions(count=4)
    readers = [study.assign_reader(UserFactory()) for _ in range(10)]
    questions = list(study.questions.all())
    for answered, reader in enumerate(readers):
        items = list(reader.assignments.order_by("position"))
        # Reader k answers k questions in all, filling items in order.
        for n in range(min(answered, len(items) * len(questions))):
            item, question = items[n // len(questions)], questions[n % len(questions)]
            Score.objects.create(assignment=item, question=question, value=3)
    with django_assert_num_queries(3):
        orders = study.readers.all().reading_orders()
    for answered, reader in enumerate(readers):
        alone = reader.reading_order()
        assert orders[reader.pk] == alone
        assert alone.done == answered // len(questions) and alone.total == 4
        expected_next = None if alone.done == 4 else answered // len(questions)
        assert alone.next_index() == expected_next


def test_a_study_without_likert_questions_scores_no_single_reconstruction():
    """Items follow the questions: without a Likert question there is nothing to score on
    its own, and once one is added (before any score) every reader gets every item."""
    study = study_with_reconstructions(count=2)
    study.questions.all().delete()
    reader = study.assign_reader(UserFactory())
    order = reader.reading_order()
    assert (order.total, order.next_index()) == (0, None)
    study.add_default_questions()
    study.extend_orders()
    order = reader.reading_order()
    assert (order.answers_needed, order.total, order.next_index()) == (4, 2, 0)
    study.questions.all().delete()
    study.extend_orders()
    assert reader.reading_order().total == 0, "unscored items leave with their questions"
