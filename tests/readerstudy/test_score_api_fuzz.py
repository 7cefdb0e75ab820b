"""The score API as a state machine: after any sequence of saves, good and bad, from the reader
and from someone else, the stored answers are the last accepted ones and the audit trail has
one revision per change (schemathesis covers the schema; this covers what is stored).

The oracle below restates the API's rules independently of the serializer and the model.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, event, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from rest_framework.test import APIClient

from readerstudy.models import Score, ScoreRevision
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

ITEMS = 3
QUESTION_KEYS = ["overall", "snr", "artifacts", "sharpness"]
# What the search covered, printed at the end (hypothesis prints no statistics for a state
# machine run this way).
COVERED = {"sequences": 0, "accepted": 0, "refused": 0}
answer_values = st.one_of(
    st.integers(-2, 8),
    st.sampled_from([True, False, None, "4", 3.0, 3.5, [], {}, 2**70]),
)
seconds = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=1e6),
    st.sampled_from([True, False, None, "5", 86_400, 86_401, -0.0]),
)


def accepted(answers: object, keys: set[str], seconds_sent: object, has_seconds: bool) -> bool:
    """Whether the API must store this save: a non-empty object of at most 50 known questions,
    each a whole number 1..5 (not a boolean), and seconds (if sent) a number 0..86,400."""
    if not isinstance(answers, dict) or not answers or len(answers) > 50:
        return False
    for key, value in answers.items():
        if key not in keys or isinstance(value, bool) or not isinstance(value, int):
            return False
        if not 1 <= value <= 5:
            return False
    if has_seconds:
        if isinstance(seconds_sent, bool) or not isinstance(seconds_sent, int | float):
            return False
        if not math.isfinite(seconds_sent) or not 0 <= seconds_sent <= 86_400:
            return False
    return True


class ScoringSession(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        COVERED["sequences"] += 1
        self.study = StudyFactory()
        for _ in range(ITEMS):
            ReconstructionFactory(case__study=self.study)
        self.reader = UserFactory()
        self.items = list(
            self.study.assign_reader(self.reader)
            .assignments.order_by("position")
            .values_list("public_id", flat=True)
        )
        other = UserFactory()
        self.others_items = list(
            self.study.assign_reader(other).assignments.values_list("public_id", flat=True)
        )
        self.keys = set(self.study.questions.values_list("key", flat=True))
        self.client = APIClient()
        self.client.force_authenticate(self.reader)
        self.stored: dict[tuple[str, str], int] = {}
        self.changes = 0

    def put(self, public_id: str, body: object, *, raw: bytes | None = None):
        return self.client.put(
            f"/api/items/{public_id}/scores/",
            raw if raw is not None else json.dumps(body),
            content_type="application/json",
        )

    @rule(
        item=st.integers(0, ITEMS - 1),
        answers=st.one_of(
            # a reader's save: some of the study's questions, each on its scale
            st.dictionaries(
                st.sampled_from(QUESTION_KEYS), st.integers(1, 5), min_size=1, max_size=4
            ),
            st.dictionaries(
                st.one_of(st.sampled_from(QUESTION_KEYS), st.text(max_size=8)),
                answer_values,
                max_size=6,
            ),
            st.sampled_from([[], "overall", None, 3]),
        ),
        seconds_sent=st.one_of(st.floats(0, 600), seconds),
        has_seconds=st.booleans(),
    )
    def save(self, item, answers, seconds_sent, has_seconds):
        public_id = self.items[item]
        body = {"scores": answers, **({"seconds_spent": seconds_sent} if has_seconds else {})}
        response = self.put(public_id, body)
        note(f"PUT {body} -> {response.status_code}")
        if accepted(answers, self.keys, seconds_sent, has_seconds):
            assert response.status_code == 200, response.content
            for key, value in answers.items():
                previous = self.stored.get((public_id, key))
                self.changes += previous != value
                self.stored[public_id, key] = value
            assert response.json()["scores"] == answers
            event("accepted")
            COVERED["accepted"] += 1
        else:
            assert response.status_code == 400, response.content
            event("refused")
            COVERED["refused"] += 1

    @rule(item=st.integers(0, ITEMS - 1), value=st.integers(1, 5))
    def save_to_someone_elses_item(self, item, value):
        response = self.put(self.others_items[item], {"scores": {"overall": value}})
        assert response.status_code == 404

    @rule(item=st.integers(0, ITEMS - 1), raw=st.binary(max_size=64))
    def send_garbage(self, item, raw):
        response = self.put(self.items[item], None, raw=raw)
        assert response.status_code in (200, 400), response.content
        if response.status_code == 200:  # bytes that happen to be a valid save
            body = json.loads(raw)
            for key, value in body["scores"].items():
                self.changes += self.stored.get((self.items[item], key)) != value
                self.stored[self.items[item], key] = value

    @rule(item=st.integers(0, ITEMS - 1), size=st.integers(17 * 1024, 40 * 1024))
    def send_too_much(self, item, size):
        response = self.put(self.items[item], None, raw=b'{"scores": {"' + b"x" * size + b'": 3}}')
        assert response.status_code == 413

    @invariant()
    def stored_answers_are_the_last_accepted(self):
        stored = {
            (public_id, key): value
            for public_id, key, value in Score.objects.filter(
                assignment__reader__user=self.reader
            ).values_list("assignment__public_id", "question__key", "value")
        }
        assert stored == self.stored
        revisions = ScoreRevision.objects.filter(score__assignment__reader__user=self.reader)
        assert revisions.count() == self.changes


def test_stored_answers_are_always_the_last_accepted_ones():
    run_state_machine_as_test(
        ScoringSession,
        settings=hypothesis_settings(
            hypothesis_settings.default,
            deadline=None,
            stateful_step_count=20,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    print(
        f"score API state machine: {COVERED['sequences']:,} sequences, "
        f"{COVERED['accepted']:,} saves accepted, {COVERED['refused']:,} refused"
    )
