"""A study's window presets: named windows the reader switches with a key (issue 34).

Images reach the viewer scaled by their case's reference maximum (readerstudy.dicom), so a
preset is written in percent of that maximum, the same for every case whatever its units:
"Soft tissue: 30/60" is a window centred at 30 % of the reference's maximum, 60 % wide.
"""

from __future__ import annotations

import math

from readerstudy.manifest import text_problem

MOST_PRESETS = 9
NAME_LENGTH = 40


class PresetError(ValueError):
    """A line of presets that cannot be read; the message names the line."""


def parse_window_presets(text: str) -> list[dict]:
    """Presets from text, one per line, `name: level/width` (percent; blank lines ignored)."""
    presets: list[dict] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, window = line.rpartition(":")
        name = name.strip()
        if not colon or not name:
            raise PresetError(
                f"line {number}: write it as 'name: level/width', e.g. 'Soft: 30/60'"
            )
        problem = text_problem(name, NAME_LENGTH)  # every name a researcher gives
        if problem:
            raise PresetError(f"line {number}: the name {problem}")
        level_text, slash, width_text = window.partition("/")
        try:
            level, width = float(level_text), float(width_text)
        except ValueError:
            slash = ""
        if not slash:
            raise PresetError(f"line {number}: level/width must be two numbers, e.g. 30/60")
        if not (math.isfinite(level) and math.isfinite(width)) or not 0 < width <= 400:
            raise PresetError(f"line {number}: the width must be above 0 and at most 400 (%)")
        if not -100 <= level <= 200:
            raise PresetError(f"line {number}: the level must be within -100 and 200 (%)")
        if any(preset["name"] == name for preset in presets):
            raise PresetError(f"line {number}: {name!r} is named twice")
        presets.append({"name": name, "level": level, "width": width})
    if len(presets) > MOST_PRESETS:
        raise PresetError(f"{len(presets)} presets; at most {MOST_PRESETS}")
    return presets


def format_window_presets(presets: list[dict]) -> str:
    """The text `parse_window_presets` reads back as the same presets."""
    return "\n".join(f"{p['name']}: {p['level']:g}/{p['width']:g}" for p in presets)
