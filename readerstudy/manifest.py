"""Reading a researcher's manifest: bytes in, records with their physical line numbers out.

One reader for every manifest the project takes (docs/interfaces.md section 2): the file is
read as bytes (at most MAX_MANIFEST_BYTES), decoded strictly as UTF-8 (a byte-order mark is
allowed), parsed as CSV with quoted fields that may span lines, and every problem names the
physical line a spreadsheet or editor shows, blank lines and multi-line fields counted. Field
sizes and the nesting of the JSON `parameters` are bounded before anything is stored, and text
that a database or a spreadsheet would mishandle (control characters, NUL, direction
overrides) is refused here rather than failing later.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_MANIFEST_BYTES = 16 * 2**20
# csv's own limit per field; a field beyond it is reported, not raised.
CSV_FIELD_LIMIT = csv.field_size_limit()
MAX_TEXT = {"case": 200, "method": 100, "reference": 500, "reconstruction": 500}
MAX_PARAMETERS_CHARS = 10_000
MAX_PARAMETERS_DEPTH = 16
# Unicode's explicit direction controls: invisible, and able to make a name read as another.
_DIRECTION_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


@dataclass
class ManifestProblem:
    line: int  # physical line of the manifest (1 is the header); 0 for the file as a whole
    message: str

    def __str__(self) -> str:
        # One line each, whatever a library put in its message.
        message = " ".join(self.message.split())
        return f"line {self.line}: {message}" if self.line else message


@dataclass
class Record:
    """One manifest row: its first physical line and its values by column."""

    line: int
    values: dict[str, str]


def text_problem(value: str, max_length: int) -> str | None:
    """Why `value` cannot be stored as a name or label, or None."""
    if len(value) > max_length:
        return f"is {len(value):,} characters long; at most {max_length:,}"
    for character in value:
        if unicodedata.category(character) in ("Cc", "Cs") or character in _DIRECTION_CONTROLS:
            return f"contains the control character U+{ord(character):04X}"
    return None


def _line_of_offset(data: bytes, offset: int) -> int:
    """The physical line holding byte `offset` (lines end at LF, CR or CR LF, as csv reads)."""
    head = data[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


def _decode(data: bytes) -> tuple[str | None, ManifestProblem | None]:
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as error:
        line = _line_of_offset(data, error.start)
        byte = data[error.start : error.start + 1].hex()
        return None, ManifestProblem(
            line, f"byte 0x{byte} is not UTF-8; save the manifest as UTF-8 (CSV UTF-8 in Excel)"
        )


def read_records(
    manifest: Path, required: tuple[str, ...], optional: tuple[str, ...]
) -> tuple[list[Record], list[ManifestProblem]]:
    """The manifest's non-blank rows, and the problems that stop it being read at all
    (unreadable, too large, not UTF-8, malformed CSV, missing or repeated columns)."""
    try:
        size = manifest.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            return [], [
                ManifestProblem(
                    0, f"the manifest is {size:,} bytes; at most {MAX_MANIFEST_BYTES:,}"
                )
            ]
        data = manifest.read_bytes()
    except OSError as error:
        return [], [ManifestProblem(0, f"cannot open manifest: {error.strerror or error}")]
    text, problem = _decode(data)
    if text is None:
        return [], [problem] if problem else []
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[Record] = []
    columns: list[str] | None = None
    known = required + optional
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            message = str(error)
            if "field larger than field limit" in message:
                message = f"a field is longer than {CSV_FIELD_LIMIT:,} characters"
            return records, [ManifestProblem(line, f"malformed CSV: {message}")]
        if not any(field.strip() for field in fields):
            continue  # a blank line
        if columns is None:
            columns = [name.strip() for name in fields]
            header_problem = _header_problem(columns, required)
            if header_problem:
                return [], [ManifestProblem(line, header_problem)]
            continue
        values = {
            name: value.strip()
            for name, value in zip(columns, fields, strict=False)
            if name in known
        }
        records.append(Record(line, {name: values.get(name, "") for name in known}))
    if columns is None:
        return [], [ManifestProblem(0, "the manifest is empty")]
    return records, []


def _header_problem(columns: list[str], required: tuple[str, ...]) -> str | None:
    missing = [name for name in required if name not in columns]
    if missing:
        return (
            f"missing column(s) {', '.join(missing)}; expected {','.join(required)}[,parameters]"
        )
    repeated = sorted({name for name in columns if name and columns.count(name) > 1})
    if repeated:
        return f"column(s) {', '.join(repeated)} appear more than once"
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond the range of a float")
    return value


def _value_problem(value: object, depth: int = 1) -> str | None:
    """Why a parsed JSON value cannot be stored (too deep, text a database refuses)."""
    if depth > MAX_PARAMETERS_DEPTH:
        return f"nest deeper than {MAX_PARAMETERS_DEPTH} levels"
    if isinstance(value, str):
        if "\x00" in value:
            return "hold a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "hold an unpaired surrogate (\\ud800-\\udfff)"
        return None
    children: list[object] = []
    if isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        children = value
    for child in children:
        problem = _value_problem(child, depth + 1)
        if problem:
            return problem
    return None


_YES, _NO = ("1", "yes", "true", "y"), ("", "0", "no", "false", "n")
MAX_NOTE_CHARS = 2000
_ANSWER_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}")


def parse_flag(text: str, column: str) -> bool:
    """yes/no, true/false, 1/0 (any case; empty is no), or ValueError."""
    value = text.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ValueError(f"{column} must be yes or no, got {text[:40]!r}")


def parse_answers(text: str) -> dict[str, int]:
    """The `answer` column, `overall=4; rank=1`: a training reconstruction's reference
    answers by question key (a Likert score, or its rank in the case for a rank or choice
    question), or ValueError naming the part that is wrong."""
    answers: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, separator, value = (x.strip() for x in part.partition("="))
        if not separator or not _ANSWER_KEY.fullmatch(key) or not value.isdigit():
            raise ValueError(
                f"answer {part[:40]!r}: write question=number, e.g. overall=4; rank=1"
            )
        if key in answers:
            raise ValueError(f"answer names {key!r} twice")
        if len(value) > 2:
            raise ValueError(f"answer {part[:40]!r}: the number is over 99")
        answers[key] = int(value)
    return answers


def parse_parameters(text: str) -> dict[str, Any]:
    """The `parameters` column as a JSON object fit to store, or ValueError saying why not."""
    if not text:
        return {}
    if len(text) > MAX_PARAMETERS_CHARS:
        raise ValueError(
            f"parameters are {len(text):,} characters long; at most {MAX_PARAMETERS_CHARS:,}"
        )
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"parameters nest deeper than {MAX_PARAMETERS_DEPTH} levels") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"parameters are not valid JSON ({error.msg})") from None
    except ValueError as error:  # a constant or a number the hooks refused, or a huge integer
        raise ValueError(f"parameters are not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError("parameters must be a JSON object")
    problem = _value_problem(value)
    if problem:
        raise ValueError(f"parameters {problem}")
    return value
