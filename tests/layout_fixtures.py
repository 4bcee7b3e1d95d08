"""Tiny copies of the official public layouts, written into a folder from generated images.

File names, folder names and CSV columns are exactly those of the official downloads; only
the images are small generated JPEGs (a class-coloured disc on skin tone, so a model can learn).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

HAM_DX = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
ISIC2018_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
ISIC2019_COLUMNS = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
SITES = ("head/neck", "upper extremity", "lower extremity", "torso")


def write_image(path: Path, label: int, seed: int, size: int = 48) -> None:
    """A JPEG: skin-tone noise with a disc whose colour depends on the label."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), (200, 160, 140), np.float64) + rng.normal(0, 12, (size, size, 3))
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    hue = np.array([(37 * label) % 256, (91 * label + 40) % 256, (151 * label + 80) % 256], float)
    image[disc] = hue + rng.normal(0, 8, (disc.sum(), 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=90)


def write_mask(path: Path, size: int = 48) -> None:
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((disc * 255).astype(np.uint8)).save(path)


def _write_csv(path: Path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _plan(n_lesions_per_class: int, n_classes: int, images_per_lesion: int = 2):
    """[(image index, lesion index, label)]: each lesion has 1..images_per_lesion images."""
    plan, image = [], 0
    for label in range(n_classes):
        for k in range(n_lesions_per_class):
            lesion = label * n_lesions_per_class + k
            for _ in range(1 + (k % images_per_lesion)):
                plan.append((image, lesion, label))
                image += 1
    return plan


def _one_hot(label: int, n: int, floats: bool = True) -> list:
    return [("1.0" if i == label else "0.0") if floats else str(int(i == label)) for i in range(n)]


def make_ham10000(root: Path, n_lesions_per_class: int = 4, with_masks: bool = True) -> Path:
    """HAM10000_metadata.csv + HAM10000_images_part_1/ and _part_2/ (+ Task 1 masks)."""
    rows = []
    for image, lesion, label in _plan(n_lesions_per_class, len(HAM_DX), 3):
        image_id = f"ISIC_{24306 + image:07d}"
        part = "HAM10000_images_part_1" if image % 2 == 0 else "HAM10000_images_part_2"
        write_image(root / part / f"{image_id}.jpg", label, image)
        if with_masks and image % 3 == 0:
            write_mask(root / "ISIC2018_Task1_Training_GroundTruth" / f"{image_id}_segmentation.png")
        rows.append([f"HAM_{lesion:07d}", image_id, HAM_DX[label], "histo", f"{30 + 5 * (image % 10)}.0",
                     ("male", "female", "unknown")[image % 3], SITES[image % 4].split("/")[0]])
    _write_csv(root / "HAM10000_metadata.csv",
               ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"], rows)
    return root


def make_isic2018(root: Path, n_lesions_per_class: int = 3) -> Path:
    """ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv,
    ISIC2018_Task3_Training_Input/ and ISIC2018_Task3_Training_LesionGroupings.csv."""
    rows, groups = [], []
    for image, lesion, label in _plan(n_lesions_per_class, len(ISIC2018_COLUMNS)):
        image_id = f"ISIC_{24306 + image:07d}"
        write_image(root / "ISIC2018_Task3_Training_Input" / f"{image_id}.jpg", label, image)
        rows.append([image_id] + _one_hot(label, len(ISIC2018_COLUMNS)))
        groups.append([image_id, f"HAM_{lesion:07d}", "histopathology"])
    name = "ISIC2018_Task3_Training_GroundTruth"
    _write_csv(root / name / f"{name}.csv", ["image"] + list(ISIC2018_COLUMNS), rows)
    _write_csv(root / "ISIC2018_Task3_Training_LesionGroupings.csv",
               ["image", "lesion_id", "diagnosis_confirm_type"], groups)
    return root


def make_isic2019(root: Path, n_lesions_per_class: int = 3) -> Path:
    """ISIC_2019_Training_GroundTruth.csv (UNK never set, as in the official file),
    ISIC_2019_Training_Input/, ISIC_2019_Training_Metadata.csv (some lesion_id empty)."""
    rows, meta = [], []
    n_classes = len(ISIC2019_COLUMNS) - 1
    for image, lesion, label in _plan(n_lesions_per_class, n_classes):
        image_id = f"ISIC_{image:07d}" + ("_downsampled" if image % 5 == 0 else "")
        write_image(root / "ISIC_2019_Training_Input" / f"{image_id}.jpg", label, image)
        rows.append([image_id] + _one_hot(label, len(ISIC2019_COLUMNS)))
        meta.append([image_id, str(30 + 5 * (image % 10)), SITES[image % 4],
                     "" if image % 7 == 0 else f"BCN_{lesion:07d}", ("male", "female")[image % 2]])
    _write_csv(root / "ISIC_2019_Training_GroundTruth.csv", ["image"] + list(ISIC2019_COLUMNS), rows)
    _write_csv(root / "ISIC_2019_Training_Metadata.csv",
               ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"], meta)
    return root


def make_isic2020(root: Path, n_patients: int = 12, images_per_patient: int = 3) -> Path:
    """train.csv (the Kaggle/ISIC 2020 columns) with train/ JPEGs; a third of patients melanoma."""
    rows, image = [], 0
    for patient in range(n_patients):
        for k in range(images_per_patient):
            target = int(patient % 3 == 0 and k == 0)
            name = f"ISIC_{2637011 + image:07d}"
            write_image(root / "train" / f"{name}.jpg", target, image)
            rows.append([name, f"IP_{patient:07d}", ("male", "female")[patient % 2], str(40 + patient),
                         SITES[image % 4], "melanoma" if target else "nevus",
                         "malignant" if target else "benign", str(target)])
            image += 1
    _write_csv(root / "train.csv", ["image_name", "patient_id", "sex", "age_approx",
                                    "anatom_site_general_challenge", "diagnosis", "benign_malignant",
                                    "target"], rows)
    return root


def make_folders(root: Path, classes=("benign", "malignant"), n_per_class: int = 12,
                 with_masks: bool = True) -> Path:
    """root/<class>/<name>.jpg and root/masks/<class>/<name>.png for half of them."""
    for label, name in enumerate(classes):
        for k in range(n_per_class):
            write_image(root / name / f"img_{k:03d}.jpg", label, 100 * label + k)
            if with_masks and k % 2 == 0:
                write_mask(root / "masks" / name / f"img_{k:03d}.png")
    return root


def make_csv_with_groups(root: Path, n_groups_per_class: int = 6, images_per_group: int = 3) -> Path:
    """The notebook layout with the optional group, age, sex and site columns."""
    rows, image = [], 0
    for label in range(3):
        for g in range(n_groups_per_class):
            for _ in range(images_per_group):
                write_image(root / "images" / f"{image:04d}.jpg", label, image)
                rows.append([f"{image:04d}", label, f"P{label}{g}", 20 + image % 50,
                             ("male", "female")[image % 2], SITES[image % 4]])
                image += 1
    _write_csv(root / "labels.csv", ["id", "label", "group", "age", "sex", "site"], rows)
    return root
