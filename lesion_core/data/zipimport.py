"""Importing a dataset from a ZIP file or an upload, safely: traversal, bombs, name
clashes and a full disk refused, nothing left behind on failure."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from lesion_core.data.records import unsafe_id
from lesion_core.errors import DataError, UnsafeArchiveError
from lesion_core.i18n import N_
from lesion_core.paths import atomic_write_text

_DATASET_MARKERS = re.compile(r"(labels\.csv|DBtrain\.csv|ISIC-2017_\w+_Part3_GroundTruth\.csv"
                              r"|HAM10000_metadata\.csv|ISIC_2019_Training_GroundTruth\.csv|train\.csv"
                              r"|ISIC2018_Task3_Training_LesionGroupings\.csv)")


_CHUNK = 1 << 20


def import_zip(zip_path, dest, *, max_total_bytes: int = 20 * 10**9, max_files: int = 100_000,
               max_ratio: float = 200.0) -> Path:
    """Extract a dataset ZIP safely into dest (new or empty); return the dataset root in it.

    Every entry is checked before anything is written: names that would land outside dest
    (`../`, absolute, drive letters), symlinks and other special files, encrypted entries,
    more than max_files entries, more than max_total_bytes uncompressed (as declared by the
    central directory) or more than the free disk space, and entries or the whole archive
    compressed more than max_ratio:1 (zip bombs, including many small entries). Extraction
    goes to a temporary folder beside dest, streams each entry with a byte counter against
    its declared size, and is renamed into place at the end: a refused or failed import
    leaves nothing behind. Raises UnsafeArchiveError for unsafe archives, DataError otherwise.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(N_("{folder} already exists and is not empty; choose a new folder").format(folder=dest))
    try:
        archive = zipfile.ZipFile(zip_path)
    except FileNotFoundError:
        raise DataError(N_("ZIP file not found: {file}").format(file=zip_path)) from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(N_("{file} is not a readable ZIP file: {error}").format(file=zip_path.name, error=exc)) from None
    with archive:
        members = _checked_members(archive, max_total_bytes, max_files, max_ratio)
        check_room(sum(info.file_size for _, info in members), dest.parent)
        inner_root = _zip_dataset_root([name for name, _ in members], zip_path.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-import-", dir=dest.parent))
        try:
            for name, info in members:
                _extract_member(archive, info, staging / name)
            if dest.exists():
                dest.rmdir()  # empty, checked above
            os.rename(staging, dest)
        except zipfile.BadZipFile as exc:
            raise DataError(N_("{file} is damaged: {error}; nothing was imported").format(
                file=zip_path.name, error=exc)) from None
        except (OSError, NotImplementedError) as exc:  # disk full, unsupported compression...
            raise DataError(N_("cannot extract {file} into {folder}: {error}; nothing was imported").format(
                file=zip_path.name, folder=dest.parent, error=exc)) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest / inner_root


def import_upload(name: str, content: bytes, folder, check=None) -> Path:
    """Unpack an uploaded dataset ZIP (its file name and bytes) under folder and return the
    dataset root: import_zip into folder/<name>-<content hash>. Errors name the user's file,
    not a temporary one; check (root -> None, raising) is run on the result, and whatever fails
    leaves nothing behind.

    The same content uploaded again, by this session or several at once, shares one import:
    imports into a folder take turns (an flock on the folder), extract into a temporary folder
    renamed into place, and mark themselves finished (IMPORT_DONE in dest, naming the root). A
    finished import is reused, never removed or extracted again: a run may be training on it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = Path(str(name)).name  # (paths.dataset_name gives the stem back from the folder's name)
    base = base if base not in ("", ".", "..") else "upload.zip"
    stem = f"{Path(base).stem[:40]}-{hashlib.sha256(content).hexdigest()[:10]}"
    dest = folder / stem
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
        if (dest / IMPORT_DONE).is_file():  # imported before: the same bytes, so the same dataset
            root = dest / (dest / IMPORT_DONE).read_text(encoding="utf-8").strip()
            if check is not None:
                check(root)
            return root
        shutil.rmtree(dest, ignore_errors=True)  # an import cut short (killed): never finished, never used
        parked = Path(tempfile.mkdtemp(prefix=f".{stem}-upload-", dir=folder))  # the archive, beside dest
        try:
            archive = parked / base
            archive.write_bytes(content)
            root = import_zip(archive, dest)
            if check is not None:
                check(root)  # a ZIP that holds no usable dataset fails here, with its report
            atomic_write_text(dest / IMPORT_DONE, f"{root.relative_to(dest).as_posix()}\n")
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(parked, ignore_errors=True)
        return root
    finally:
        os.close(fd)


IMPORT_DONE = ".lesion-lab-import"  # in an upload's folder: the import finished; its dataset root


def _checked_members(archive, max_total_bytes, max_files, max_ratio) -> list:
    """[(safe relative name, ZipInfo)] of the files to extract; UnsafeArchiveError says why not."""
    infos = archive.infolist()
    if len(infos) > max_files:
        raise UnsafeArchiveError(N_("the ZIP has {n} entries, more than the limit of {limit}").format(
            n=len(infos), limit=max_files))
    total = sum(info.file_size for info in infos)
    if total > max_total_bytes:
        raise UnsafeArchiveError(N_("the ZIP would unpack to {total} bytes, more than the limit of {limit}").format(
            total=f"{total:,}", limit=f"{max_total_bytes:,}"))
    # Entries of 1 MiB or less pass the per-entry check below; thousands of them still make
    # a bomb (1,500 zero-filled MiB entries: 1.96 MB of ZIP, 1.5 GB unpacked).
    packed = sum(info.compress_size for info in infos)
    if total > _CHUNK and total > max_ratio * max(packed, 1):
        raise UnsafeArchiveError(N_("the ZIP would unpack to {total} bytes from {packed}: compressed {ratio}:1 "
                                    "overall, more than the limit of {limit}:1 (a zip bomb?)").format(
            total=f"{total:,}", packed=f"{packed:,}", ratio=total // max(packed, 1), limit=f"{max_ratio:g}"))
    members = []
    for info in infos:
        reason = unsafe_id(info.filename.replace("\\", "/"), N_("name"))
        if reason:
            raise UnsafeArchiveError(N_("refused entry {entry}: {reason}").format(entry=repr(info.filename),
                                                                                reason=reason))
        name = PurePosixPath(info.filename.replace("\\", "/")).as_posix()  # "a/./b" -> "a/b"
        file_type = (info.external_attr >> 16) & 0o170000
        if file_type == 0o120000:
            raise UnsafeArchiveError(N_("refused entry {entry}: it is a symbolic link").format(
                entry=repr(info.filename)))
        if file_type not in (0, 0o100000, 0o040000):
            raise UnsafeArchiveError(N_("refused entry {entry}: it is not a regular file or folder").format(
                entry=repr(info.filename)))
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(N_("refused entry {entry}: it is encrypted").format(entry=repr(info.filename)))
        # Small entries cannot be bombs; large ones compressed beyond max_ratio are.
        if info.file_size > _CHUNK and info.file_size > max_ratio * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            raise UnsafeArchiveError(N_("refused entry {entry}: compressed {ratio}:1, more than the limit of "
                                        "{limit}:1 (a zip bomb?)").format(entry=repr(info.filename), ratio=ratio,
                                                                          limit=f"{max_ratio:g}"))
        if info.is_dir() or name.split("/")[0] == "__MACOSX":
            continue  # folders are made as files land; macOS resource forks are not data
        if name == ".":
            raise UnsafeArchiveError(N_("refused entry {entry}: a file named as the folder itself").format(
                entry=repr(info.filename)))
        members.append((name, info))
    _refuse_name_clashes(members)
    return members


# Room to leave on the disk after an import, so the import alone never fills it.
DISK_RESERVE = 256 * 2**20


def check_room(n_bytes: int, folder) -> None:
    """UnsafeArchiveError when writing n_bytes into folder (or its nearest existing parent)
    would leave less than DISK_RESERVE free."""
    folder = Path(folder).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if n_bytes > free - DISK_RESERVE:
        raise UnsafeArchiveError(N_("the ZIP would unpack to {total} bytes but only {free} are free on that disk; "
                                    "nothing was imported").format(total=f"{n_bytes:,}", free=f"{free:,}"))


def _refuse_name_clashes(members: list) -> None:
    """UnsafeArchiveError when two entries would land on one path: a repeated name (one would
    silently overwrite the other), names differing only in case (the same file on Windows
    and macOS), or a file whose name is also another entry's folder."""
    seen = {}
    for name, info in members:
        first = seen.setdefault(name.casefold(), info)
        if first is not info:
            raise UnsafeArchiveError(N_("refused entries {first} and {second}: they would be the same file "
                                        "(a repeated name, or names differing only in case)").format(
                first=repr(first.filename), second=repr(info.filename)))
    for name, info in members:
        for parent in PurePosixPath(name).parents:
            if parent.as_posix().casefold() in seen:
                raise UnsafeArchiveError(N_("refused entry {entry}: {name} is both a file and a folder in the "
                                            "ZIP").format(entry=repr(info.filename), name=repr(parent.as_posix())))


def _zip_dataset_root(names: list, zip_name: str) -> str:
    """The folder inside the ZIP ("" for its top) holding the dataset's label file(s)."""
    parents = {PurePosixPath(n).parent.as_posix() for n in names
               if _DATASET_MARKERS.fullmatch(PurePosixPath(n).name)}
    roots = {"" if p == "." else p for p in parents}
    if not roots:
        raise DataError(N_("no dataset found in {file}: expected labels.csv (or DBtrain.csv) or the ISIC 2017 "
                           "ground-truth CSVs, at the top or in one folder").format(file=zip_name))
    def depth(folder: str) -> int:
        return folder.count("/") + 1 if folder else 0

    shallowest = min(map(depth, roots))
    candidates = sorted(r for r in roots if depth(r) == shallowest)
    if len(candidates) > 1:
        raise DataError(N_("{file} holds several datasets ({folders}); put one dataset per ZIP").format(
            file=zip_name, folders=", ".join(candidates)))
    return candidates[0]


def _extract_member(archive, info, target: Path) -> None:
    """Stream one entry to target. zipfile never yields more than the entry's declared size
    (checked against the caps before anything was written), and a forged smaller size fails
    its CRC check (BadZipFile), which the caller turns into a refused import."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, _CHUNK)
