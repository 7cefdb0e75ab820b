"""Each reader's own order of items (Reader.extend_order): new items shuffled into the unread
rest, training items first, and the study's share of repeat reads spread over the order."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import numpy as np
from django.db import transaction
from django.db.models import F

from readerstudy.models.reading import Assignment, Reader, Score
from readerstudy.models.studies import Comparison, Reconstruction

# Items between a first read and its repeat where the order is long enough: past the span a
# reader remembers a particular image (the order is random, so most gaps are far longer).
REPEAT_MIN_GAP = 20


def random_interleaving(kept: int, added: int, rng: np.random.Generator) -> set[int]:
    """The slots, among kept + added, of `added` new items merged into `kept` ones that keep
    their order: every such merge is equally likely (each of C(kept + added, added))."""
    return set(rng.choice(kept + added, size=added, replace=False).tolist())


@transaction.atomic
def extend_order(reader: Reader, rng: np.random.Generator | None = None) -> int:
    """Give this reader every item of the study they do not have yet, shuffled into the
    unscored rest of their order at random positions, and the study's share of repeat
    reads; returns how many items were added. An item is a reconstruction (when the study
    asks a Likert question) or a comparison of a rank or forced-choice question, shown in
    a left-to-right layout drawn for this reader.

    Items up to the last one with a score never move. New items are not appended as one
    block: a block would tell the reader which items arrived together (often one method
    or one batch of cases). The unscored rest keeps its relative order, and each new item
    is equally likely at every position among it. Unscored reconstructions of a study that
    no longer asks a Likert question leave the order, and positions close up.

    A repeat read is a second item of the same reconstruction or comparison, with its own
    public id (and, for a comparison, its own layout), at least REPEAT_MIN_GAP items after
    the first read where the order is long enough, else as late as it can be.
    """
    rng = rng if rng is not None else np.random.default_rng(secrets.randbits(64))
    # Lock this reader's items: a score saved meanwhile cannot land on an item being moved.
    items = list(reader.assignments.select_for_update().order_by("position"))
    scored = set(
        Score.objects.filter(assignment__reader=reader).values_list("assignment", flat=True)
    )
    training = _training_items(reader)
    items, removed = _drop_unasked(reader, items, scored, training)
    new = _missing_items(reader, items, rng)
    # Training items open the unread part of the order, in a random order of their own.
    new_training = [new[k] for k in rng.permutation(len(new)) if training(new[k])]
    new = [item for item in new if not training(item)]
    candidates, wanted = _repeat_candidates(
        reader, [item for item in items if not training(item)], new
    )
    consecutive = [item.position for item in items] == list(range(1, len(items) + 1))
    if not new and not new_training and not wanted and consecutive and not removed:
        return 0

    last_scored = max((i for i, item in enumerate(items) if item.pk in scored), default=-1)
    prefix, rest = items[: last_scored + 1], items[last_scored + 1 :]
    start = prefix[-1].position + 1 if prefix else 1
    new_slots = random_interleaving(len(rest), len(new), rng)
    shuffled_new = iter([new[k] for k in rng.permutation(len(new))])
    rest_items = iter(rest)
    tail = new_training + [
        next(shuffled_new) if slot in new_slots else next(rest_items)
        for slot in range(len(rest) + len(new))
    ]
    repeats = []
    for _ in range(wanted):
        # The repeat's place first, uniform over the unread part past the first
        # REPEAT_MIN_GAP items, then its first read among those far enough before it:
        # repeats are spread over the order instead of piling up at its end.
        sequence = prefix + tail
        earliest = min(max(len(prefix), REPEAT_MIN_GAP + 1), len(sequence))
        at = int(rng.integers(earliest, len(sequence) + 1))
        places = [i for i, item in enumerate(sequence) if id(item) in candidates]
        far = [i for i in places if i < at - REPEAT_MIN_GAP]
        if not far:
            # No first read far enough before this place: draw the place again, among
            # those far enough after the earliest candidate (or last, when none is).
            low = max(places[0] + REPEAT_MIN_GAP + 1, len(prefix))
            at = (
                int(rng.integers(low, len(sequence) + 1))
                if low <= len(sequence)
                else len(sequence)
            )
            far = [i for i in places if i < at - REPEAT_MIN_GAP] or places[:1]
        original = sequence[far[int(rng.integers(len(far)))]]
        del candidates[id(original)]
        repeat = Assignment(
            reader=reader,
            reconstruction_id=original.reconstruction_id,
            comparison_id=original.comparison_id,
            layout=rng.permutation(original.layout).tolist() if original.layout else [],
            repeat_of=original,
        )
        tail.insert(at - len(prefix), repeat)
        repeats.append(repeat)

    moved = [item for item in tail if item.pk is not None]
    if moved:
        # Out of the way first, so that no position is held twice at any moment (the
        # unique (reader, position) constraint is checked row by row).
        offset = max(item.position for item in items) + len(tail) + 1
        Assignment.objects.filter(pk__in=[item.pk for item in moved]).update(
            position=F("position") + offset
        )
    for position, item in enumerate(tail, start=start):
        item.position = position
    Assignment.objects.bulk_update(moved, ["position"])
    Assignment.objects.bulk_create(new_training + new)  # a repeat needs its first's pk
    Assignment.objects.bulk_create(repeats)
    return len(new_training) + len(new) + len(repeats)


def _training_items(reader: Reader) -> Callable[[Assignment], bool]:
    """Whether an item (saved or not) shows a training case."""
    reconstructions = set(
        Reconstruction.objects.filter(
            case__study=reader.study_id, case__training=True
        ).values_list("pk", flat=True)
    )
    comparisons = set(
        Comparison.objects.filter(
            question__study=reader.study_id, case__training=True
        ).values_list("pk", flat=True)
    )
    return lambda item: (
        item.reconstruction_id in reconstructions or item.comparison_id in comparisons
    )


def _drop_unasked(
    reader: Reader,
    items: list[Assignment],
    scored: set[int],
    training: Callable[[Assignment], bool],
) -> tuple[list[Assignment], bool]:
    """(the items kept, whether any were deleted): unscored reconstructions when the
    study asks no Likert question, and unscored repeats beyond the study's share."""
    gone: set[int] = set()
    if not reader.study.asks_likert():
        gone |= {i.pk for i in items if i.reconstruction_id and i.pk not in scored}
    repeats = [i for i in items if i.repeat_of_id is not None and i.repeat_of_id not in gone]
    surplus = len(repeats) - _repeats_wanted(
        reader,
        sum(1 for i in items if not i.repeat_of_id and i.pk not in gone and not training(i)),
    )
    unscored_repeats = [i.pk for i in reversed(repeats) if i.pk not in scored]
    gone |= set(unscored_repeats[: max(surplus, 0)])
    # A first read whose repeat is answered stays (its deletion would take the repeat).
    gone -= {i.repeat_of_id for i in items if i.repeat_of_id is not None and i.pk in scored}
    gone |= {i.pk for i in items if i.repeat_of_id in gone}  # deleted with their first read
    if gone:
        Assignment.objects.filter(pk__in=gone).delete()
    return [item for item in items if item.pk not in gone], bool(gone)


def _missing_items(
    reader: Reader, items: list[Assignment], rng: np.random.Generator
) -> list[Assignment]:
    """Unsaved first reads of every reconstruction (when a Likert question is asked) and
    comparison this reader does not have yet, comparisons in a layout drawn for them."""
    new: list[Assignment] = []
    if reader.study.asks_likert():
        have = {item.reconstruction_id for item in items if item.reconstruction_id}
        new += [
            Assignment(reader=reader, reconstruction_id=pk)
            for pk in Reconstruction.objects.filter(case__study=reader.study_id)
            .exclude(pk__in=have)
            .order_by("pk")
            .values_list("pk", flat=True)
        ]
    have_comparisons = {item.comparison_id for item in items if item.comparison_id}
    new += [
        Assignment(
            reader=reader,
            comparison=comparison,
            layout=rng.permutation([m.pk for m in comparison.members.all()]).tolist(),
        )
        for comparison in Comparison.objects.filter(question__study=reader.study_id)
        .exclude(pk__in=have_comparisons)
        .order_by("pk")
        .prefetch_related("members")
    ]
    return new


def _repeats_wanted(reader: Reader, first_reads: int) -> int:
    return int(reader.study.repeat_share * first_reads + 0.5)


def _repeat_candidates(
    reader: Reader, items: list[Assignment], new: list[Assignment]
) -> tuple[dict[int, Assignment], int]:
    """(first reads without a repeat yet, by id(), and how many repeats to add): enough
    to bring the repeats up to the study's share of first reads."""
    firsts = [item for item in items if item.repeat_of_id is None] + new
    repeated = {item.repeat_of_id for item in items if item.repeat_of_id is not None}
    candidates = {id(item): item for item in firsts if item.pk is None or item.pk not in repeated}
    wanted = _repeats_wanted(reader, len(firsts)) - len(repeated)
    return candidates, max(min(wanted, len(candidates)), 0)
