"""What an image file may declare before anything in it is inflated or allocated.

One number bounds every format: the voxels of one image or volume (`max_voxels`). The bytes a
file may hold on disk follow from it (every voxel as complex128, plus room for headers), and so
does what a compressed part of a file may inflate to (each reader bounds that by what the
header declares). Each reader checks the file's declared
shape against these before it decodes, so a small file that claims a huge image, or inflates
to one, is refused at the cost of reading its header.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# 2**24 voxels: a 512 x 512 x 64 volume or a 4096 x 4096 slice, 64 MiB as stored (float32).
DEFAULT_MAX_VOXELS = 2**24
# Headers, DICOM attributes and NIfTI extensions beside the pixels.
HEADER_ALLOWANCE = 2**20
# The widest sample a format can store per voxel (complex128).
MAX_BYTES_PER_VOXEL = 16


class ImageReadError(ValueError):
    """A file that cannot be used as an MR image (missing, unreadable, wrong shape, not finite)."""


class ImageTooLargeError(ImageReadError):
    """A file that declares (or inflates to) more than the limit; `voxels` may be None when
    only its bytes are known."""

    def __init__(self, message: str, *, voxels: int | None, limit: int):
        super().__init__(message)
        self.voxels = voxels
        self.limit = limit


@dataclass(frozen=True)
class Limits:
    max_voxels: int = DEFAULT_MAX_VOXELS

    @property
    def max_file_bytes(self) -> int:
        return self.max_voxels * MAX_BYTES_PER_VOXEL + HEADER_ALLOWANCE

    def check_voxels(self, path: Path, shape: tuple[int, ...]) -> None:
        """Refuse, from the header alone, an image larger than `max_voxels`."""
        sides = [int(side) for side in shape]
        if any(side < 0 for side in sides):
            raise ImageReadError(f"{path.name}: declares a negative size {tuple(sides)}")
        voxels = 1
        for side in sides:
            voxels *= side
        if voxels > self.max_voxels:
            raise ImageTooLargeError(
                f"{path.name}: declares {' x '.join(str(s) for s in sides)} = {voxels:,} "
                f"voxels, more than the {self.max_voxels:,} allowed per image",
                voxels=voxels,
                limit=self.max_voxels,
            )

    def check_file_bytes(self, path: Path) -> None:
        """Refuse a file larger than any image within the limit can be."""
        size = path.stat().st_size
        if size > self.max_file_bytes:
            raise ImageTooLargeError(
                f"{path.name}: {size:,} bytes, more than an image of at most "
                f"{self.max_voxels:,} voxels can take ({self.max_file_bytes:,})",
                voxels=None,
                limit=self.max_voxels,
            )
