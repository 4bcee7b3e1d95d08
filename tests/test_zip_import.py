"""import_zip: real ZIP files, one test per unsafe input; a refused import leaves nothing."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest

from lesion_core.data import import_upload, import_zip, load_dataset
from lesion_core.errors import DataError, UnsafeArchiveError

from test_data import make_dataset


def zip_folder(folder: Path, zip_path: Path, prefix: str = "", extra=()) -> Path:
    """Zip every file under folder (names prefixed), plus extra (ZipInfo | name, bytes) entries."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
        for info, data in extra:
            archive.writestr(info, data)
    return zip_path


@pytest.fixture
def source(tmp_path):
    return make_dataset(tmp_path / "source", n_per_class=2)


def assert_refused(tmp_path, zip_path, error=UnsafeArchiveError, match=None, **limits):
    """import_zip refuses, and afterwards the destination's parent holds nothing new."""
    parent = tmp_path / "imports"
    parent.mkdir(exist_ok=True)
    before = sorted(parent.iterdir())
    with pytest.raises(error, match=match):
        import_zip(zip_path, parent / "dest", **limits)
    assert sorted(parent.iterdir()) == before


def patch_headers(zip_path: Path, offset_local: int, offset_central: int, fmt: str, value):
    """Overwrite a field in the first local header and the first central directory entry."""
    data = bytearray(zip_path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", offset_local), (b"PK\x01\x02", offset_central)):
        start = data.index(signature) + offset
        if callable(value):
            old = struct.unpack_from(fmt, data, start)[0]
            struct.pack_into(fmt, data, start, value(old))
        else:
            struct.pack_into(fmt, data, start, value)
    zip_path.write_bytes(bytes(data))


# ---------------------------------------------------------------------------- good archives


def test_dataset_under_a_single_top_folder(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip", prefix="my_data/",
                         extra=[("__MACOSX/my_data/._labels.csv", b"\x00\x05junk")])
    root = import_zip(archive, tmp_path / "imported")
    assert root == tmp_path / "imported" / "my_data"
    assert not (tmp_path / "imported" / "__MACOSX").exists()
    assert load_dataset(root).report.n_usable == 6
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_dataset_at_the_top_of_the_zip(tmp_path, source):
    root = import_zip(zip_folder(source, tmp_path / "d.zip"), tmp_path / "imported")
    assert root == tmp_path / "imported"
    assert (root / "labels.csv").is_file() and len(list((root / "images").iterdir())) == 6


def test_isic_layout_is_found(tmp_path):
    folder = tmp_path / "isic"
    folder.mkdir()
    (folder / "ISIC-2017_Training_Part3_GroundTruth.csv").write_text(
        "image_id,melanoma,seborrheic_keratosis\n")
    root = import_zip(zip_folder(folder, tmp_path / "i.zip", prefix="ISIC/"), tmp_path / "out")
    assert root == tmp_path / "out" / "ISIC"


def test_empty_existing_destination_is_used(tmp_path, source):
    (tmp_path / "dest").mkdir()
    root = import_zip(zip_folder(source, tmp_path / "d.zip"), tmp_path / "dest")
    assert (root / "labels.csv").is_file()


# ---------------------------------------------------------------------------- refused archives


def test_parent_folder_entry(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip", extra=[("../evil.txt", b"x")])
    assert_refused(tmp_path, archive, match=r"'\.\./evil\.txt'.*'\.\.'")
    assert not (tmp_path / "evil.txt").exists()


def test_nested_parent_folder_entry(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip", extra=[("images/../../evil.txt", b"x")])
    assert_refused(tmp_path, archive, match="would escape")


def test_backslash_parent_folder_entry(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip", extra=[("..\\evil.txt", b"x")])
    assert_refused(tmp_path, archive, match="would escape")


def test_absolute_entry(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip", extra=[("/tmp/evil.txt", b"x")])
    with zipfile.ZipFile(archive) as z:
        assert "/tmp/evil.txt" in z.namelist()  # the name really is stored absolute
    assert_refused(tmp_path, archive, match="absolute path")


def test_drive_letter_entry(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip", extra=[("C:evil.txt", b"x")])
    raw = archive.read_bytes()
    if b"C:evil.txt" not in raw:  # some zipfile versions drop the drive when writing
        pytest.skip("zipfile dropped the drive letter")
    assert_refused(tmp_path, archive, match="absolute path")


def test_symlink_entry(tmp_path, source):
    link = zipfile.ZipInfo("images/link.jpg")
    link.create_system = 3  # Unix, so the mode bits in external_attr are meaningful
    link.external_attr = (0o120777 << 16)
    archive = zip_folder(source, tmp_path / "d.zip", extra=[(link, "/etc/passwd")])
    assert_refused(tmp_path, archive, match="symbolic link")


def test_device_file_entry(tmp_path, source):
    fifo = zipfile.ZipInfo("pipe")
    fifo.create_system = 3
    fifo.external_attr = (0o010644 << 16)
    archive = zip_folder(source, tmp_path / "d.zip", extra=[(fifo, "")])
    assert_refused(tmp_path, archive, match="not a regular file")


def test_encrypted_entry(tmp_path):
    archive = tmp_path / "e.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("labels.csv", "id,label\n")
    patch_headers(archive, 6, 8, "<H", lambda flags: flags | 0x1)  # the "encrypted" flag bit
    assert_refused(tmp_path, archive, match="encrypted")


def test_repeated_entry_name(tmp_path, source):
    with pytest.warns(UserWarning, match="Duplicate name"):  # zipfile writes it all the same
        archive = zip_folder(source, tmp_path / "d.zip", extra=[("labels.csv", "id,label\ns000,2\n")])
    with zipfile.ZipFile(archive) as z:
        assert z.namelist().count("labels.csv") == 2
    assert_refused(tmp_path, archive, match="same file")


def test_entry_names_differing_only_in_case(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip", extra=[("IMAGES/s000.jpg", b"x")])
    assert_refused(tmp_path, archive, match="same file")


def test_entry_that_is_both_a_file_and_a_folder(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip", extra=[("masks", b"x")])
    assert_refused(tmp_path, archive, match="both a file and a folder")


@pytest.mark.parametrize("name", [".", "images/."])
def test_entry_named_as_a_folder_itself(tmp_path, source, name):
    archive = zip_folder(source, tmp_path / "d.zip", extra=[(name, b"x")])
    assert_refused(tmp_path, archive)


def test_unsupported_compression_is_a_data_error(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip")
    patch_headers(archive, 8, 10, "<H", 9)  # Deflate64, which zipfile cannot read
    assert_refused(tmp_path, archive, error=DataError, match="nothing was imported")


def test_too_many_files(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip")
    assert_refused(tmp_path, archive, match="more than the limit of 5", max_files=5)


def test_too_large_uncompressed(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip")
    assert_refused(tmp_path, archive, match="more than the limit", max_total_bytes=2_000)


def test_zip_bomb_ratio(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip", extra=[("images/zeros.bin", bytes(8 << 20))])
    assert_refused(tmp_path, archive, match="zip bomb")


def test_entry_larger_than_declared(tmp_path):
    archive = tmp_path / "lie.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        z.writestr("labels.csv", "id,label\n" + "x,0\n" * 1000)
    # Declare 10 bytes uncompressed in both headers while the data holds 4 kB.
    patch_headers(archive, 22, 24, "<I", 10)
    assert_refused(tmp_path, archive, error=DataError)


def test_not_a_zip(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_text("not a zip at all")
    assert_refused(tmp_path, fake, error=DataError, match="not a readable ZIP")


def test_missing_zip(tmp_path):
    assert_refused(tmp_path, tmp_path / "nope.zip", error=DataError, match="not found")


def test_zip_without_a_dataset(tmp_path):
    archive = tmp_path / "n.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("photos/a.txt", "hello")
    assert_refused(tmp_path, archive, error=DataError, match="no dataset found")


def test_zip_with_two_datasets(tmp_path, source):
    archive = zip_folder(source, tmp_path / "d.zip", prefix="a/",
                         extra=[("b/labels.csv", "id,label\n")])
    assert_refused(tmp_path, archive, error=DataError, match="several datasets")


def test_non_empty_destination(tmp_path, source):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        import_zip(zip_folder(source, tmp_path / "d.zip"), dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


# ---------------------------------------------------------------------------- uploads (the Dataset page)


def test_an_upload_is_unpacked_under_its_name_and_replaced_when_uploaded_again(tmp_path, source):
    content = zip_folder(source, tmp_path / "d.zip").read_bytes()
    folder = tmp_path / "uploads"
    root = import_upload("my lesions.zip", content, folder, check=load_dataset)
    assert root.parent == folder and root.name.startswith("my lesions-")
    assert len(load_dataset(root).records) == 6
    again = import_upload("my lesions.zip", content, folder)
    assert again == root and sorted(p.name for p in folder.iterdir()) == [root.name]  # nothing else left


@pytest.mark.parametrize("name", ["bad.zip", "../../bad.zip", ".."])
def test_a_broken_upload_is_named_as_the_user_named_it_and_leaves_nothing(tmp_path, name):
    folder = tmp_path / "uploads"
    shown = Path(name).name if Path(name).name != ".." else "upload.zip"
    with pytest.raises(DataError, match=rf"^{shown} is not a readable ZIP file"):
        import_upload(name, b"this is a text file, not a ZIP", folder)
    assert list(folder.iterdir()) == []
    assert not (tmp_path / "bad.zip").exists()


def test_an_upload_that_holds_no_usable_dataset_leaves_nothing(tmp_path):
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("notes/readme.txt", "no labels here")
    folder = tmp_path / "uploads"
    with pytest.raises(DataError):
        import_upload("empty.zip", archive.read_bytes(), folder, check=load_dataset)
    assert list(folder.iterdir()) == []
