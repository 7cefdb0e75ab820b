"""Unpacking an upload (readerstudy/uploads.py): nothing may land outside the target folder,
and the limits hold even against an archive that lies about its sizes."""

import stat
import zipfile

import pytest

from readerstudy.uploads import (
    UploadLimits,
    UploadRefusedError,
    find_manifest,
    safe_relative_path,
    unpack,
)

LIMITS = UploadLimits(max_files=100, max_unpacked_bytes=10_000_000)


def make_zip(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def everything_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.txt", "leaves"),
        ("a/../../evil.txt", "leaves"),
        ("/etc/evil.txt", "absolute"),
        ("C:/evil.txt", "absolute"),
        ("a\\..\\evil.txt", "backslash"),
    ],
)
def test_zip_slip_names_are_refused_and_nothing_escapes(tmp_path, name, message):
    archive = make_zip(tmp_path / "up.zip", [("manifest.csv", "x"), (name, "pwned")])
    target = tmp_path / "target"
    with pytest.raises(UploadRefusedError, match=message):
        unpack([("up.zip", archive)], target, LIMITS)
    assert not (tmp_path / "evil.txt").exists()
    assert all(p.resolve().is_relative_to(target) for p in target.rglob("*"))


def test_symbolic_links_in_an_archive_are_refused(tmp_path):
    archive = tmp_path / "up.zip"
    with zipfile.ZipFile(archive, "w") as out:
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        out.writestr(link, "/etc/passwd")
    with pytest.raises(UploadRefusedError, match="symbolic link"):
        unpack([("up.zip", archive)], tmp_path / "target", LIMITS)


def test_a_zip_bomb_stops_at_the_unpacked_limit(tmp_path):
    """20 MB of zeros deflate to about 20 kB: the declared size is refused up front, and a
    header that lies (declares 1 kB) is caught while decompressing."""
    archive = make_zip(tmp_path / "bomb.zip", [("zeros.npy", b"\0" * 20_000_000)])
    assert archive.stat().st_size < 100_000
    with pytest.raises(UploadRefusedError, match="UPLOAD_MAX_UNPACKED_BYTES"):
        unpack([("bomb.zip", archive)], tmp_path / "t1", LIMITS)
    # Rewrite the sizes in both headers so the archive claims 1,000 bytes unpacked.
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        data[at + offset : at + offset + 4] = (1000).to_bytes(4, "little")
    liar = tmp_path / "liar.zip"
    liar.write_bytes(bytes(data))
    # zipfile itself stops at the declared size (then the checksum fails); either way the
    # lie is refused and no more than it declared is written.
    with pytest.raises(UploadRefusedError, match="more than the 1,000 bytes|Bad CRC"):
        unpack([("liar.zip", liar)], tmp_path / "t2", LIMITS)
    assert sum(p.stat().st_size for p in (tmp_path / "t2").rglob("*") if p.is_file()) <= 1000


def test_file_count_limit_and_duplicates(tmp_path):
    archive = make_zip(tmp_path / "many.zip", [(f"f{i}.npy", "x") for i in range(101)])
    with pytest.raises(UploadRefusedError, match="UPLOAD_MAX_FILES"):
        unpack([("many.zip", archive)], tmp_path / "t1", LIMITS)
    one = make_zip(tmp_path / "one.zip", [("a/ref.npy", "x")])
    loose = tmp_path / "ref.npy"
    loose.write_text("y")
    with pytest.raises(UploadRefusedError, match="two files"):
        unpack([("one.zip", one), ("a/ref.npy", loose)], tmp_path / "t2", LIMITS)


def test_files_and_archives_unpack_to_their_relative_paths(tmp_path):
    archive = make_zip(tmp_path / "images.zip", [("knee/ref.npy", "r"), ("knee/rec.npy", "c")])
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("case,reference\n")
    target = tmp_path / "target"
    assert unpack([("images.zip", archive), ("manifest.csv", manifest)], target, LIMITS) == 3
    assert everything_under(target) == ["knee/rec.npy", "knee/ref.npy", "manifest.csv"]
    assert find_manifest(target) == target / "manifest.csv"


def test_the_manifest_must_be_one(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(UploadRefusedError, match="no manifest.csv"):
        find_manifest(tmp_path)
    (tmp_path / "a" / "manifest.csv").write_text("")
    (tmp_path / "manifest.csv").write_text("")
    with pytest.raises(UploadRefusedError, match="several manifests"):
        find_manifest(tmp_path)


def test_a_nul_in_a_name_is_refused():
    with pytest.raises(UploadRefusedError, match="not a usable"):
        safe_relative_path("a/\x00b")


def test_safe_relative_path_keeps_ordinary_names():
    assert str(safe_relative_path("./knee 01/ref.nii.gz")) == "knee 01/ref.nii.gz"
