"""The records of a study archive's study.json, checked and inserted into a new study
(readerstudy/restore.py reads the archive and runs this in the import's transaction).

Every record is checked by the rules the forms and the API apply: settings and questions
through their forms, answers by their question's scale or ranking rules, durations as the
scoring API bounds them, names and labels as text a spreadsheet and a database can hold.
Archived people become the accounts `People` names, or new accounts without a password that
never take an existing account's name. Every problem is kept and all are raised together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime

from metrics.models import MetricValue
from readerstudy.forms import QuestionForm, StudySettingsForm, format_anchors
from readerstudy.importer import ManifestError, ManifestProblem
from readerstudy.manifest import text_problem
from readerstudy.models import (
    Assignment,
    Comparison,
    Question,
    Reader,
    Reconstruction,
    Score,
    ScoreRevision,
    Study,
)
from readerstudy.models.studies import MAX_REPEAT_SHARE
from readerstudy.windows import format_window_presets

# As the scoring API bounds one answer's time (readerstudy/api/serializers.py).
MAX_SECONDS = 24 * 3600
MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True)
class People:
    """Who archived people become here: `users` maps archived names to existing accounts,
    `researchers` names the accounts that run the restored study."""

    users: dict[str, str] = field(default_factory=dict)
    researchers: tuple[str, ...] = ()


def _when(text: Any, what: str) -> datetime:
    value = parse_datetime(text) if isinstance(text, str) else None
    if value is None:
        raise ValueError(f"{what}: {str(text)[:40]!r} is not a time")
    return value


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what}: {str(value)[:20]!r} is not a whole number")
    return value


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what}: {str(value)[:20]!r} is not a number of seconds")
    if not (math.isfinite(value) and 0 <= value <= MAX_SECONDS):
        raise ValueError(f"{what}: {value!r} is not within 0-{MAX_SECONDS} seconds")
    return float(value)


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: not text")
    problem = text_problem(value, limit)
    if problem:
        raise ValueError(f"{what} {problem}")
    return value


def _metric_value(value: Any) -> float | None:
    """A stored metric value: a number, "inf" or "-inf" (an infinite PSNR), or null."""
    if value is None:
        return None
    if isinstance(value, str) and value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"metric value {str(value)[:20]!r} is not a number")
    return float(value)


def _form_problems(form: Any, what: str) -> list[str]:
    return [
        f"{what}: {name if name != '__all__' else ''} {' '.join(errors)}".replace(" : ", ": ")
        for name, errors in form.errors.items()
    ]


class RecordRestorer:
    """Checks and inserts study.json's records into the new study; every problem is kept,
    and if there is one, all of them are raised together (the transaction rolls back)."""

    def __init__(self, study: Study, record: dict[str, Any], people: People):
        self.study, self.record, self.people = study, record, people
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.accounts: dict[str, Any] = {}
        self.questions: dict[str, Question] = {}
        self.comparisons: dict[tuple[str, str, int], Comparison] = {}
        self.items: dict[tuple[str, Any], Assignment] = {}
        self.reconstructions = dict(
            Reconstruction.objects.filter(case__study=study).values_list("public_id", "pk")
        )

    def run(self) -> list[str]:
        steps = (
            self._settings,
            self._questions,
            self._researchers,
            self._comparisons,
            self._readers,
            self._scores,
            self._metric_values,
        )
        for step in steps:
            try:
                step()
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                self.problems.append(f"malformed or missing {error}")
            if self.problems:
                break  # later records refer to these
        if self.problems:
            raise ManifestError(
                [ManifestProblem(0, f"study.json: {p[:MAX_MESSAGE_CHARS]}") for p in self.problems]
            )
        return self.notes

    def _settings(self) -> None:
        settings_of = self.record["study"]
        share = settings_of.get("repeat_share", 0.0)
        if (
            isinstance(share, bool)
            or not isinstance(share, int | float)
            or not (math.isfinite(share) and 0 <= share <= MAX_REPEAT_SHARE)
        ):
            self.problems.append(f"repeat_share {str(share)[:20]!r} is not within 0-0.5")
            return
        form = StudySettingsForm(
            {
                "title": self.study.title,
                "instructions": settings_of.get("instructions", ""),
                "end_message": settings_of.get("end_message", self.study.end_message),
                "presentation": settings_of.get("presentation"),
                "repeat_percent": round(share * 100),
                "window_presets_text": _presets_text(settings_of.get("window_presets") or []),
            },
            instance=self.study,
        )
        status = settings_of.get("status")
        if status not in Study.Status.values:
            self.problems.append(
                f"study status {str(status)[:20]!r} is not one of draft, open, closed"
            )
        if not form.is_valid():
            self.problems += _form_problems(form, "study")
            return
        form.save()
        self.study.repeat_share = float(share)
        self.study.status = Study.Status(status)
        self.study.save(update_fields=["repeat_share", "status"])

    def _questions(self) -> None:
        for number, question in enumerate(self.record["questions"], start=1):
            data = {
                name: question.get(name)
                for name in (
                    "label",
                    "key",
                    "kind",
                    "scale_min",
                    "scale_max",
                    "set_size",
                    "comparisons_per_reconstruction",
                )
            }
            data = {name: "" if value is None else value for name, value in data.items()}
            if question.get("allow_ties"):
                data["allow_ties"] = "on"
            anchors = question.get("anchors") or {}
            data["anchors_text"] = format_anchors(anchors) if isinstance(anchors, dict) else "x"
            form = QuestionForm(data, instance=Question(study=self.study))
            key = str(question.get("key"))[:50]
            if not form.is_valid():
                self.problems += _form_problems(form, f"question {number} ({key!r})")
                continue
            if form.cleaned_data["key"] in self.questions:
                self.problems.append(f"question {number}: two questions use the key {key!r}")
                continue
            form.instance.position = _whole(question.get("position", number), "position")
            self.questions[form.cleaned_data["key"]] = form.save()

    def _researchers(self) -> None:
        users = get_user_model()
        for name in self.people.researchers:
            self.study.researchers.add(users.objects.get(username=name))
        if self.people.researchers:  # the first named restored it: it is theirs
            self.study.created_by = users.objects.get(username=self.people.researchers[0])
            self.study.save(update_fields=["created_by"])
        for name in self.record.get("researchers", []):
            if name not in self.people.researchers:
                self.notes.append(
                    f"archived researcher {str(name)[:150]!r} was given no rights here "
                    "(name them with --researcher to)"
                )

    def _comparisons(self) -> None:
        cases = dict(self.study.cases.values_list("name", "pk"))
        for entry in self.record.get("comparisons", []):
            key = (str(entry["question"]), str(entry["case"]), _whole(entry["number"], "number"))
            question = self.questions[key[0]]
            if not question.compares or key in self.comparisons:
                self.problems.append(f"comparison {list(key)} is not one of a ranking question")
                continue
            comparison = Comparison.objects.create(
                question=question, case_id=cases[key[1]], number=key[2]
            )
            comparison.members.set([self.reconstructions[m] for m in entry["members"]])
            self.comparisons[key] = comparison

    def _account(self, name: Any) -> Any:
        """The account an archived reader's scores go to: the mapped one, else a new one."""
        users = get_user_model()
        name = _text(name, "reader name", 150)
        try:
            UnicodeUsernameValidator()(name)
        except ValidationError:
            raise ValueError(f"reader name {name[:40]!r} is not a user name") from None
        if name in self.people.users:
            return users.objects.get(username=self.people.users[name])
        account_name, number = name, 1
        while users.objects.filter(username=account_name).exists():
            number += 1
            account_name = f"{name[:140]}-restored{'' if number == 2 else number - 1}"
        user = users(username=account_name)
        user.set_unusable_password()
        user.save()
        moved = "" if account_name == name else f" (an account here is called {name!r} already)"
        self.notes.append(
            f"reader {name!r} became the new account {account_name!r} without a password"
            f"{moved}: invite them or set one, or restore with --map-user {name}=ACCOUNT"
        )
        return user

    def _item_of(self, entry: Any) -> tuple[Any, dict[str, Any]]:
        """The key a score names its item by, and the item's fields."""
        if isinstance(entry, dict) and "repeat" in entry:
            key, fields = self._item_of(entry["repeat"])
            return ("repeat", key), fields
        if isinstance(entry, str):
            return entry, {"reconstruction_id": self.reconstructions[entry]}
        key = _comparison_key(entry["comparison"])
        layout = [self.reconstructions[public_id] for public_id in entry["layout"]]
        if sorted(layout) != sorted(self.comparisons[key].members.values_list("pk", flat=True)):
            raise ValueError(f"layout of comparison {list(key)}")
        return key, {"comparison": self.comparisons[key], "layout": layout}

    def _readers(self) -> None:
        archived = {entry.get("username") for entry in self.record["readers"]}
        for old in self.people.users:
            if old not in archived:  # a misspelt name would leave the real one unmapped
                self.problems.append(f"--map-user {old}=...: the archive has no reader {old!r}")
        for entry in self.record["readers"]:
            name = entry["username"]
            if name in self.accounts:
                raise ValueError(f"reader {str(name)[:40]!r} listed twice")
            user = self._account(name)
            if self.study.researchers.filter(pk=user.pk).exists():
                raise ValueError(f"reader {name!r} would also run the study (blinding)")
            self.accounts[name] = user
            removed = entry.get("removed_at")
            reader = Reader.objects.create(
                study=self.study,
                user=user,
                removed_at=_when(removed, "removed_at") if removed else None,
            )
            if entry.get("joined_at"):
                Reader.objects.filter(pk=reader.pk).update(
                    joined_at=_when(entry["joined_at"], "joined_at")
                )
            keyed = [
                (key, Assignment(reader=reader, position=position, **fields))
                for position, (key, fields) in enumerate(map(self._item_of, entry["order"]), 1)
            ]
            for key, item in keyed:
                if (name, key) in self.items:
                    raise ValueError(f"reader {name!r}'s order holds an item twice")
                self.items[name, key] = item
            # First reads before their repeats: a repeat refers to its first read's row.
            for key, item in keyed:
                if _is_repeat(key):
                    item.repeat_of = self.items[name, key[1]]
            Assignment.objects.bulk_create(item for key, item in keyed if not _is_repeat(key))
            Assignment.objects.bulk_create(item for key, item in keyed if _is_repeat(key))

    def _answer(
        self, question: Question, item: Assignment, entry: dict, what: str, *, empty: bool = False
    ) -> Any:
        """(value, ranks) of an answer, or a problem recorded and None. `empty`: no answer
        (both null) is one too, as before a score's first revision."""
        value, ranks = entry.get("value"), entry.get("ranks")
        if empty and value is None and ranks is None:
            return None, None
        if question.compares:
            shown = len(item.layout or [])
            problem = (
                "a ranking question's answer is ranks"
                if value is not None or ranks is None
                else question.ranks_problem(ranks, shown)
            )
        elif ranks is not None or value is None:
            problem = "a Likert answer is one value"
        elif isinstance(value, bool) or not isinstance(value, int):
            problem = f"value {str(value)[:20]!r} is not a whole number"
        elif not question.scale_min <= value <= question.scale_max:
            problem = (
                f"value {value} is outside the scale {question.scale_min}-{question.scale_max}"
            )
        else:
            problem = None
        if problem:
            self.problems.append(f"{what}: {problem}")
            return None
        return value, ranks

    def _scores(self) -> None:
        seen: set[tuple[str, Any, str]] = set()
        for number, entry in enumerate(self.record["scores"], start=1):
            what = f"score {number} ({str(entry.get('reader'))[:40]!r})"
            item_key: Any = (
                _comparison_key(entry["comparison"])
                if "comparison" in entry
                else entry["reconstruction"]
            )
            if entry.get("repeat"):
                item_key = ("repeat", item_key)
            item = self.items[entry["reader"], item_key]
            question = self.questions[entry["question"]]
            if (question.compares) != (item.comparison_id is not None) or (
                item.comparison is not None and item.comparison.question_id != question.pk
            ):
                self.problems.append(
                    f"{what}: question {question.key!r} is not asked of this item"
                )
                continue
            if (entry["reader"], item_key, question.key) in seen:
                self.problems.append(f"{what}: a second answer to the same question and item")
                continue
            seen.add((entry["reader"], item_key, question.key))
            answer = self._answer(question, item, entry, what)
            if answer is None:
                continue
            score = Score.objects.create(
                assignment=item,
                question=question,
                value=answer[0],
                ranks=answer[1],
                seconds_spent=_seconds(entry["seconds_spent"], f"{what} seconds_spent"),
            )
            # auto_now fields: the original times are written after the insert.
            Score.objects.filter(pk=score.pk).update(
                created_at=_when(entry["created_at"], "created_at"),
                updated_at=_when(entry["updated_at"], "updated_at"),
            )
            self._revisions(score, question, item, entry["revisions"], what)

    def _revisions(
        self, score: Score, question: Question, item: Assignment, revisions: list, what: str
    ) -> None:
        for revision in revisions:
            answer = self._answer(question, item, revision, f"{what}, a revision", empty=True)
            before = self._answer(
                question,
                item,
                {"value": revision.get("previous_value"), "ranks": revision.get("previous_ranks")},
                f"{what}, a revision's previous answer",
                empty=True,
            )
            if answer is None or before is None:
                continue
            by = revision.get("recorded_by")
            saved = ScoreRevision.objects.create(
                score=score,
                previous_value=before[0],
                value=answer[0],
                previous_ranks=before[1],
                ranks=answer[1],
                seconds_spent=_seconds(revision["seconds_spent"], f"{what} seconds_spent"),
                recorded_by=self.accounts.get(by) if isinstance(by, str) else None,
            )
            ScoreRevision.objects.filter(pk=saved.pk).update(
                recorded_at=_when(revision["recorded_at"], "recorded_at")
            )

    def _metric_values(self) -> None:
        MetricValue.objects.bulk_create(
            MetricValue(
                reconstruction_id=self.reconstructions[entry["reconstruction"]],
                metric=_text(entry["metric"], "metric", 64),
                version=_text(entry["version"], "metric version", 64),
                value=_metric_value(entry["value"]),
                error=_text(entry.get("error", ""), "metric error", MAX_MESSAGE_CHARS),
                device=_text(entry.get("device", ""), "device", 16),
                computed_at=_when(entry["computed_at"], "computed_at"),
            )
            for entry in self.record["metric_values"]
        )


def _is_repeat(key: Any) -> bool:
    return isinstance(key, tuple) and len(key) == 2 and key[0] == "repeat"


def _comparison_key(named: Any) -> tuple[str, str, int]:
    """A comparison as study.json names it: [question key, case name, set number]."""
    question, case, number = named
    return str(question), str(case), _whole(number, "comparison number")


def _presets_text(presets) -> str:
    """An archive's window presets as the settings form reads them (an archive written before
    presets existed has none); anything malformed is refused by the form, with its reason."""
    if not isinstance(presets, list) or not all(
        isinstance(p, dict) and {"name", "level", "width"} <= set(p) for p in presets
    ):
        return "not a list of presets"
    return format_window_presets(presets)
