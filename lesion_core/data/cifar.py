"""CIFAR-10 through torchvision, for the notebook's first exercise."""

from __future__ import annotations

from pathlib import Path

from lesion_core.errors import DataError
from lesion_core.net import reachable

_CIFAR_HOST = ("www.cs.toronto.edu", 443)


def load_cifar10(root, train: bool = True, download: bool = False, transform=None):
    """torchvision's CIFAR-10 (PIL image, label) from root/cifar-10-batches-py.

    Downloads only when download=True and the host answers within a few seconds; otherwise
    a DataError says where to put the files. torchvision checks each file's MD5 before
    unpickling it, so only the genuine batches are ever loaded.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root)
    folder = root / CIFAR10.base_folder
    where = (f"put the extracted cifar-10-batches-py folder (from {CIFAR10.url}) at {folder}")
    if not folder.is_dir():
        if not download:
            raise DataError(f"CIFAR-10 not found; {where}, or allow the download")
        if not reachable(*_CIFAR_HOST):
            raise DataError(f"CIFAR-10 not found and the download site cannot be reached "
                            f"(offline?); {where}")
    try:
        return CIFAR10(str(root), train=train, download=download and not folder.is_dir(),
                       transform=transform)
    except RuntimeError:
        raise DataError(f"CIFAR-10 files in {folder} are incomplete or corrupted (checksums "
                        f"differ); {where}") from None
    except OSError as exc:
        raise DataError(f"CIFAR-10 download failed ({exc}); {where}") from None
