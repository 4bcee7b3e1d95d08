"""load_cifar10: clear messages offline and for damaged files; never downloads in tests.

A positive load from a hand-written cifar-10-batches-py is not possible: torchvision checks
each batch's MD5 against the real files before unpickling (which is also what makes the
pickles safe to load), so only the genuine 170 MB download passes.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from lesion_core.data import load_cifar10
from lesion_core.errors import DataError


def test_missing_cifar_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as caught:
        load_cifar10(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "cifar-10-python.tar.gz" in message


def test_real_format_files_with_wrong_checksums_are_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    with pytest.raises(DataError, match="incomplete or corrupted"):
        load_cifar10(tmp_path, train=False)
