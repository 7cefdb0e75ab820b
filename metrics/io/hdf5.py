"""fastMRI `.h5` files, read as untrusted: only a plain numeric dataset held in the file itself.

HDF5 can keep a dataset's bytes in other files (external storage, virtual layouts, external
links), decode them with plugin filters, or hold references and compound records; any of these
would let an uploaded file read the server's files or run a decoder nobody vetted. So a dataset
is read only when it is reached by a hard link, laid out contiguous or chunked, stored in this
file, filtered by nothing but deflate, shuffle and Fletcher-32, and of a numeric type (complex
is h5py's {r, i} pair). HDF5's deflate filter grows its buffer until the stream ends, so each
compressed chunk is first inflated here, bounded, and refused if it holds more than its share.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from metrics.io.limits import ImageReadError, Limits

FASTMRI_DATASETS = ("reconstruction", "reconstruction_rss")
# A dataset split into more chunks than this is refused: each is checked one by one.
MAX_CHUNKS = 65_536


def read_fastmri_h5(path: Path, limits: Limits) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as handle:
        links = {name: handle.get(name, getlink=True) for name in handle}
        for name, link in links.items():
            if not isinstance(link, h5py.HardLink):
                raise ImageReadError(
                    f"{path.name}: {name!r} is a {type(link).__name__} to another place or file;"
                    " only datasets stored in the file itself are read"
                )
        names = [name for name in links if isinstance(handle[name], h5py.Dataset)]
        chosen = next((name for name in FASTMRI_DATASETS if name in names), None)
        if chosen is None and len(names) == 1:
            chosen = names[0]
        if chosen is None:
            raise ImageReadError(
                f"{path.name}: expected a dataset named {' or '.join(FASTMRI_DATASETS)} or a single "
                f"dataset; found {', '.join(names) or 'none'}"
            )
        dataset = handle[chosen]
        where = f"{path.name}: dataset {chosen!r}"
        _check_dtype(where, dataset.dtype)
        limits.check_voxels(path, dataset.shape)
        _check_storage(where, dataset)
        return np.asarray(dataset[()])


def _check_dtype(where: str, dtype: np.dtype) -> None:
    if dtype.fields is not None or dtype.kind not in "iufc":
        raise ImageReadError(
            f"{where} holds {dtype} values (compound, reference, string or other); "
            "only numeric image data is read"
        )


def _check_storage(where: str, dataset: Any) -> None:
    from h5py import h5d, h5z

    plist = dataset.id.get_create_plist()
    if plist.get_external_count() > 0:
        raise ImageReadError(f"{where} keeps its bytes in external files; they are not read")
    layout = plist.get_layout()
    if layout not in (h5d.CONTIGUOUS, h5d.CHUNKED):
        kind = {h5d.COMPACT: "compact", h5d.VIRTUAL: "virtual"}.get(layout, str(layout))
        raise ImageReadError(
            f"{where} has a {kind} layout; only contiguous or chunked datasets are read"
        )
    allowed = {h5z.FILTER_DEFLATE, h5z.FILTER_SHUFFLE, h5z.FILTER_FLETCHER32}
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [code for code in filters if code not in allowed]
    if unknown:
        raise ImageReadError(
            f"{where} is encoded with HDF5 filter {unknown[0]}; only deflate (gzip), shuffle "
            "and Fletcher-32 are read (re-save it with h5py's compression='gzip' or none)"
        )
    if filters:
        _check_chunks(where, dataset, filters)


def _check_chunks(where: str, dataset: Any, filters: list[int]) -> None:
    """Inflate every compressed chunk within its nominal size before HDF5 decodes it."""
    from h5py import h5z

    chunks = dataset.id.get_num_chunks()
    if chunks > MAX_CHUNKS:
        raise ImageReadError(f"{where} is split into {chunks:,} chunks; at most {MAX_CHUNKS:,}")
    nominal = int(np.prod(dataset.chunks)) * dataset.dtype.itemsize
    for index in range(chunks):
        info = dataset.id.get_chunk_info(index)
        skipped, raw = dataset.id.read_direct_chunk(info.chunk_offset)
        # Filters are undone last to first; a set bit in the mask skips that filter.
        for position in reversed(range(len(filters))):
            if skipped & (1 << position):
                continue
            if filters[position] == h5z.FILTER_FLETCHER32:
                raw = raw[:-4]
            elif filters[position] == h5z.FILTER_DEFLATE:
                raw = _inflate(where, raw, nominal)
        if len(raw) > nominal:
            raise ImageReadError(f"{where}: a chunk holds more bytes than its shape allows")


def _inflate(where: str, raw: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as error:
        raise ImageReadError(f"{where}: a compressed chunk is damaged ({error})") from None
    if len(out) > limit or (inflater.unconsumed_tail and not inflater.eof):
        raise ImageReadError(
            f"{where}: a compressed chunk inflates past the {limit:,} bytes of its shape "
            "(a damaged or hostile file)"
        )
    return out
