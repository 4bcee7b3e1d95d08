"""Datasets of skin-lesion images: layouts, validation report, splits, decoding and caching.

Two layouts are detected automatically:
- "csv" (the notebook's): `labels.csv` with header `id,label` (or `DBtrain.csv`, `DBval.csv`,
  `DBtest.csv` as the splits), images at `images/<id>.jpg`, masks at `masks/<id>.png`, and an
  optional `metadata.csv` (`id` or `image_id`; `age` or `age_approximate`, `sex`, `site`).
- "isic2017" (the official download, unchanged): `ISIC-2017_Training_Data/ISIC_*.jpg`,
  `ISIC-2017_Training_Part1_GroundTruth/ISIC_*_segmentation.png` and
  `ISIC-2017_Training_Part3_GroundTruth.csv` (`image_id,melanoma,seborrheic_keratosis`);
  likewise `Validation` (val) and `Test_v2` (test), with `ISIC-2017_Training_Data_metadata.csv`
  (age, sex) where present.
- The later public sets (HAM10000, ISIC 2018, 2019, 2020) and class folders: see data/layouts.py.

When rows carry a group (lesion or patient id), the splits are made by group (data/splits.py).

Every load validates each row and keeps a Report: bad rows are excluded and listed with
their id, never silently dropped. Masks are optional per sample (mask_path None).

The package, one module a job: records (what a dataset is made of), images (decoding),
layouts (one reader per published layout), splits, load (detect, validate, split), dataset
(the torch Dataset and its decoded-image cache), zipimport, cifar, demo, skin. The names
below are its public face: `from lesion_core import data; data.load_dataset(...)`.
"""

from __future__ import annotations

from lesion_core.core import CLASS_NAMES
from lesion_core.data.cifar import load_cifar10
from lesion_core.data.dataset import LesionDataset, clear_decoded_cache, decoded_cache_dir, decoded_cache_usage
from lesion_core.data.images import read_image, read_mask
from lesion_core.data.load import from_spec, load_dataset
from lesion_core.data.records import META_COLUMNS, SPLITS, LesionData, Problem, Record, Report, patient_meta
from lesion_core.data.zipimport import DISK_RESERVE, check_room, import_upload, import_zip

__all__ = [
    "CLASS_NAMES", "DISK_RESERVE", "META_COLUMNS", "SPLITS", "LesionData", "LesionDataset", "Problem", "Record",
    "Report", "check_room", "clear_decoded_cache", "decoded_cache_dir", "decoded_cache_usage", "from_spec",
    "import_upload", "import_zip", "load_cifar10", "load_dataset", "patient_meta", "read_image", "read_mask",
]
