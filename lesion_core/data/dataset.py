"""The torch Dataset of records, and the decoded-image cache behind it."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from lesion_core.data.images import read_image, read_mask
from lesion_core.data.records import Record
from lesion_core.paths import atomic_write_bytes, cache_dir


class LesionDataset(Dataset):
    """Torch dataset of records: samples {"image", "mask", "label", "id"} (image uint8
    (H, W, 3), mask uint8 (H, W) in {0, 1} or None, before the pipeline).

    With max_side, images are decoded at reduced size (longer side <= max_side, aspect kept;
    masks resized nearest) and, with cache=True, the resized uint8 arrays are kept under
    cache_dir()/decoded so later epochs skip decoding. The cache key includes each file's
    absolute path, size, modification and inode change times, so replacing a file invalidates
    its entry even when its modification time is restored.
    Without max_side nothing is cached: full-size originals would fill the disk.
    """

    def __init__(self, records, transform=None, max_side: int | None = None, cache: bool = True):
        self.records = list(records)
        self.transform = transform
        self.max_side = max_side
        self.cache = cache and bool(max_side)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        image, mask = self._decoded(record)
        sample = {"image": image, "mask": mask, "label": record.label, "id": record.id}
        return self.transform(sample) if self.transform else sample

    def _decoded(self, record: Record) -> tuple:
        """(image uint8 (H, W, 3), mask uint8 (H, W) {0,1} or None), from the cache if there."""
        if not self.cache:
            return _decode(record, self.max_side)
        try:
            key = _cache_key(record, self.max_side)
        except OSError:  # a file gone since the load: _decode says which, as a DataError
            return _decode(record, self.max_side)
        path = decoded_cache_dir() / f"{key}.npy"
        try:
            # One raw .npy per sample, the mask as a 4th channel: loads in a fraction of a
            # millisecond, faster than decoding even a small JPEG (an .npz is not).
            stored = np.load(path)
            image = np.ascontiguousarray(stored[..., :3])
            return image, (np.ascontiguousarray(stored[..., 3]) if stored.shape[-1] == 4 else None)
        except (OSError, ValueError, IndexError):
            pass  # not cached yet, or a damaged entry: decode again and rewrite it
        image, mask = _decode(record, self.max_side)
        _write_atomic_npy(path, image if mask is None else np.dstack([image, mask]))
        return image, mask


def _decode(record: Record, max_side: int | None) -> tuple:
    image = read_image(record.image_path, max_side)
    mask = read_mask(record.mask_path, image.shape[:2]) if record.mask_path else None
    return image, mask


# Bump when decoding changes, so cached samples decoded the old way are not reused
# (2: EXIF orientation applied).
_DECODE_VERSION = 2


def decoded_cache_dir() -> Path:
    """Where LesionDataset keeps decoded, resized samples (one .npy each)."""
    return cache_dir() / "decoded"


def decoded_cache_usage() -> tuple[int, int]:
    """(number of cached samples, bytes) of the decoded-sample cache."""
    files = list(decoded_cache_dir().glob("*.npy"))
    return len(files), sum(f.stat().st_size for f in files if f.is_file())


def clear_decoded_cache() -> tuple[int, int]:
    """Delete every cached decoded sample; returns (files, bytes) freed. Safe while a run
    reads the cache: a sample that vanished is decoded again from its image."""
    freed = [0, 0]
    for path in decoded_cache_dir().glob("*.npy"):
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        freed[0] += 1
        freed[1] += size
    return freed[0], freed[1]


def _cache_key(record: Record, max_side: int | None) -> str:
    """Hex digest of each file's absolute path, size, mtime_ns, inode and ctime_ns, max_side and
    the decoder. The inode change time is set by the system on every write and rename and no
    user can set it back (`cp -p` and `rsync -t` restore the modification time only)."""
    parts = [str(_DECODE_VERSION), str(max_side)]
    for path in (record.image_path, record.mask_path):
        if path is not None:
            stat = Path(path).stat()
            parts += [str(Path(path).resolve()), str(stat.st_size), str(stat.st_mtime_ns), str(stat.st_ino),
                      str(stat.st_ctime_ns)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _write_atomic_npy(path: Path, array: np.ndarray) -> None:
    """Save array to path via a temporary file and a rename, so readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())
