"""Unpacking a researcher's upload into one folder, refusing anything that could write
outside it or exhaust the disk (docs/interfaces.md section 6).

An upload is several files (a manifest beside its images, sent with their relative paths) or
`.zip` archives of them, or both. Every name becomes a path below the target folder or the
upload is refused: absolute paths, drive letters, `..`, backslashes, NUL, symbolic links and
encrypted members are refused, and so is a second file at one path. Limits on the number of
files and on the bytes unpacked are checked against the archive's directory first and again
while each member is decompressed, so an archive that lies about its sizes (a zip bomb) stops
at the limit. No Django here: the task and the tests pass the limits in.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20
# The longest name one folder entry may have on Linux file systems (NAME_MAX).
MAX_NAME_BYTES = 255
MANIFEST_NAME = "manifest.csv"


class UploadRefusedError(Exception):
    """The upload cannot be unpacked; the message says why, naming the file."""


@dataclass(frozen=True)
class UploadLimits:
    max_files: int
    max_unpacked_bytes: int


def safe_relative_path(name: str) -> PurePosixPath:
    """`name` as a path that stays below the folder it is unpacked into, or refused."""
    shown = name[:120]
    if not name or "\x00" in name:
        raise UploadRefusedError(f"{shown!r}: not a usable file name")
    if "\\" in name:
        raise UploadRefusedError(
            f"{shown}: a backslash in a path (re-create the archive with / as the separator)"
        )
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UploadRefusedError(f"{shown}: an absolute path; paths must be relative")
    parts = [part for part in PurePosixPath(name).parts if part not in ("", ".")]
    if ".." in parts:
        raise UploadRefusedError(f"{shown}: the path leaves the upload's folder (..)")
    if not parts:
        raise UploadRefusedError(f"{shown!r}: not a usable file name")
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise UploadRefusedError(
                f"{part[:60]}...: a file or folder name longer than {MAX_NAME_BYTES} bytes; "
                "shorten it"
            )
    return PurePosixPath(*parts)


class _Unpacker:
    def __init__(self, target: Path, limits: UploadLimits, progress: Callable[[int], None] | None):
        self.target = target.resolve()
        self.limits = limits
        self.progress = progress
        self.files = 0
        self.bytes = 0

    def destination(self, name: str) -> Path:
        path = self.target / safe_relative_path(name)
        # Defence in depth: a folder created earlier cannot be a link, but check the result.
        if not path.resolve().is_relative_to(self.target):
            raise UploadRefusedError(f"{name[:120]}: the path leaves the upload's folder")
        if path.exists():
            raise UploadRefusedError(f"{name[:120]}: two files in the upload have this path")
        self.files += 1
        if self.files > self.limits.max_files:
            raise UploadRefusedError(
                f"the upload holds more than {self.limits.max_files:,} files "
                "(UPLOAD_MAX_FILES); split it into several uploads"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def count(self, size: int, name: str) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_unpacked_bytes:
            raise UploadRefusedError(
                f"{name[:120]}: unpacked, the upload exceeds {self.limits.max_unpacked_bytes:,} "
                "bytes (UPLOAD_MAX_UNPACKED_BYTES)"
            )
        if self.progress is not None:
            self.progress(self.bytes)

    def add_file(self, name: str, source: Path, *, move: bool) -> None:
        path = self.destination(name)
        self.count(source.stat().st_size, name)
        (shutil.move if move else shutil.copyfile)(source, path)

    def add_archive(self, label: str, source: Path) -> None:
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError) as error:
            raise UploadRefusedError(f"{label}: not a readable zip archive ({error})") from None
        with archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            declared = sum(info.file_size for info in members)
            if self.bytes + declared > self.limits.max_unpacked_bytes:
                raise UploadRefusedError(
                    f"{label}: declares {declared:,} bytes unpacked, more than "
                    f"{self.limits.max_unpacked_bytes:,} (UPLOAD_MAX_UNPACKED_BYTES)"
                )
            if self.files + len(members) > self.limits.max_files:
                raise UploadRefusedError(
                    f"{label}: holds {len(members):,} files, more than "
                    f"{self.limits.max_files:,} (UPLOAD_MAX_FILES)"
                )
            for info in members:
                self._extract(archive, info, label)

    def _extract(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> None:
        where = f"{label}: {info.filename[:120]}"
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UploadRefusedError(f"{where}: a symbolic link; archives may hold files only")
        if info.flag_bits & 0x1:
            raise UploadRefusedError(f"{where}: encrypted; upload an archive without a password")
        path = self.destination(info.filename)
        written = 0
        try:
            with archive.open(info) as member, open(path, "wb") as out:
                while chunk := member.read(CHUNK):
                    written += len(chunk)
                    if written > info.file_size:
                        raise UploadRefusedError(
                            f"{where}: unpacks to more than the {info.file_size:,} bytes its "
                            "header declares (a damaged or hostile archive)"
                        )
                    self.count(len(chunk), where)
                    out.write(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
            raise UploadRefusedError(f"{where}: cannot be unpacked ({error})") from None


def unpack(
    sources: list[tuple[str, Path]],
    target: Path,
    limits: UploadLimits,
    progress: Callable[[int], None] | None = None,
    *,
    consume: bool = True,
) -> int:
    """Unpack `sources` ((relative name, file on disk): archives by a `.zip` name, other
    files as they are) into `target`; returns the number of files. `progress(bytes)` is
    called as they are written. The sources are consumed (moved or deleted) unless
    `consume` is false (archives only: a loose file is then copied).

    Raises:
        UploadRefusedError: a name, a member or a limit that the upload breaks; `target` may
            hold part of it then, for the caller to remove.
    """
    target.mkdir(parents=True, exist_ok=True)
    unpacker = _Unpacker(target, limits, progress)
    for name, source in sources:
        if name.lower().endswith(".zip"):
            safe_relative_path(name)
            unpacker.add_archive(name, source)
            if consume:
                os.unlink(source)
        else:
            unpacker.add_file(name, source, move=consume)
    return unpacker.files


def find_manifest(folder: Path) -> Path:
    """The upload's manifest: the one `manifest.csv` (at any depth), or else its one `.csv`."""
    named = sorted(folder.rglob(MANIFEST_NAME))
    candidates = named or sorted(folder.rglob("*.csv"))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UploadRefusedError(
            f"the upload has no {MANIFEST_NAME}: add the manifest that lists its images "
            "(columns case,reference,reconstruction,method,acceleration)"
        )
    shown = ", ".join(str(p.relative_to(folder)) for p in candidates[:5])
    raise UploadRefusedError(f"the upload has several manifests ({shown}); upload one at a time")
