"""Augmentation throughput: our joint tv_tensors pipeline against the notebook's style and albumentations.

    python bench/augment.py [--data DIR] [--seconds S] [--threads T] [--against notebook|albumentations|both]

The notebook-style chain is re-implemented below as the notebook wrote it: every step turns
the float image into a PIL image (img_as_ubyte), runs a torchvision v1 transform, and turns it
back (img_as_float), once for the image and once more, with a fresh random draw, for the mask;
skin is repainted by a per-pixel Python loop. Both chains do the same steps: crop to the lesion
(border 10), rotate up to 180 degrees with expand, crop to the rotated lesion, flips, a random
skin tone, shorter side to 256, random 224 crop, to tensor, ImageNet normalisation.
Images: the real ISIC sample ($LESION_LAB_ISIC_DEV) when given, else generated demo images,
resized to each benchmark size (masks nearest). Prints samples/s and the ratios.

Against albumentations (a development-only dependency, requirements-dev.txt): the presets
default_train and notebook_train written with albumentations 2.0.8, on 256x256 images and on
"native" ones (the same images upsampled to 2000x3000, the size of large ISIC originals).
Its Rotate keeps the size (no expand); its crops to the lesion are numpy slices, as it has no
such transform. Prints the four ratios ours / albumentations (>= 1.0: we are not slower).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import util
from torchvision import transforms as tv1
from torchvision.transforms import functional as TF

from lesion_core.data import read_image, read_mask
from lesion_core.transforms import (
    IMAGENET_MEAN, IMAGENET_STD, PRESETS, SKIN_TONES, build_pipeline, preview_draws)

SIZES = ((384, 384), (768, 1024))  # (h, w)
ALBU_SIZES = {"256x256": (256, 256), "native 2000x3000": (2000, 3000)}


# ---------------------------------------------------------------- the notebook's style


def _pil_round_trip(array: np.ndarray, op) -> np.ndarray:
    """The notebook's step body: float array -> PIL -> op -> float array."""
    return util.img_as_float(np.asarray(op(Image.fromarray(util.img_as_ubyte(array)))))


def _separately(sample: dict, op) -> dict:
    """Apply op to image and mask in two calls (so a random op draws twice, as it did)."""
    return {"image": _pil_round_trip(sample["image"], op), "mask": _pil_round_trip(sample["mask"], op)}


def _nb_crop_by_mask(sample: dict, border: int) -> dict:
    sidx = np.nonzero(sample["mask"])
    if len(sidx[0]) == 0:
        return sample
    h, w = sample["image"].shape[:2]
    minx, maxx = max(sidx[1].min() - border, 0), min(sidx[1].max() + 1 + border, w)
    miny, maxy = max(sidx[0].min() - border, 0), min(sidx[0].max() + 1 + border, h)
    def crop(im):
        return TF.crop(im, top=miny, left=minx, height=maxy - miny, width=maxx - minx)
    return _separately(sample, crop)


def _nb_change_skin(sample: dict, colour) -> dict:
    image, mask = sample["image"], sample["mask"]
    # The notebook wrote 0-255 values into a float image; /255 keeps the rest of the chain
    # running (its img_as_ubyte refuses floats above 1). The loop is the notebook's.
    colour = np.array(colour) / 255
    for i, row in enumerate(mask):
        for j, elem in enumerate(row):
            if elem == 0:
                image[i, j] = colour
    return sample


def notebook_style(sample: dict) -> dict:
    """The notebook_train chain as the notebook ran it; returns tensors like ours."""
    s = {"image": util.img_as_float(sample["image"]), "mask": util.img_as_float(sample["mask"] * 255)}
    s = _nb_crop_by_mask(s, 10)
    s = _separately(s, tv1.RandomRotation(180, expand=True))
    s = _nb_crop_by_mask(s, 0)  # what its TVRandomRotation set up (self.CBM) but never called
    s = _separately(s, tv1.RandomHorizontalFlip())
    s = _separately(s, tv1.RandomVerticalFlip())
    tone = random.choice(SKIN_TONES)
    if tone != (0, 0, 0):
        s = _nb_change_skin(s, tone)
    s = _separately(s, tv1.Resize(256))
    s = _separately(s, tv1.RandomCrop(224, pad_if_needed=True))
    image = torch.from_numpy(s["image"].transpose((2, 0, 1)).astype(np.float32))
    image.sub_(torch.tensor(IMAGENET_MEAN)[:, None, None]).div_(torch.tensor(IMAGENET_STD)[:, None, None])
    return {"image": image, "mask": torch.from_numpy(s["mask"].astype(np.float32)).unsqueeze(0)}


# ---------------------------------------------------------------- albumentations


def _np_lesion_box(mask: np.ndarray, border: int) -> tuple[slice, slice] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    h, w = mask.shape
    return (slice(max(rows[0] - border, 0), min(rows[-1] + 1 + border, h)),
            slice(max(cols[0] - border, 0), min(cols[-1] + 1 + border, w)))


def albumentations_chains() -> dict:
    """{"default_train": fn, "notebook_train": fn}: our presets written with albumentations."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    tail = [A.Normalize(IMAGENET_MEAN, IMAGENET_STD), ToTensorV2()]
    default = A.Compose([A.RandomResizedCrop((224, 224), scale=(0.35, 1.0), ratio=(0.75, 4 / 3)),
                         A.RandomRotate90(), A.HorizontalFlip(), A.VerticalFlip(), *tail])
    rotate = A.Compose([A.Rotate(limit=180, border_mode=0)])  # cv2.BORDER_CONSTANT, black corners
    rest = A.Compose([A.HorizontalFlip(), A.VerticalFlip(), A.SmallestMaxSize(256),
                      A.RandomCrop(224, 224, pad_if_needed=True), *tail])

    def crop(image, mask, border):
        box = _np_lesion_box(mask, border)
        return (image, mask) if box is None else (image[box], mask[box])

    def notebook(sample):
        image, mask = crop(sample["image"], sample["mask"], 10)
        out = rotate(image=image, mask=mask)
        image, mask = crop(out["image"], out["mask"], 0)
        tone = SKIN_TONES[random.randrange(len(SKIN_TONES))]
        if tone != SKIN_TONES[0]:
            image = image.copy()
            np.copyto(image, np.array(tone, dtype=np.uint8), where=(mask == 0)[..., None])
        return rest(image=image, mask=mask)

    return {"default_train": lambda s: default(image=s["image"], mask=s["mask"]), "notebook_train": notebook}


def paired_rates(fn_a, fn_b, samples: list[dict], seconds: float) -> tuple[float, float]:
    """Calls per second of fn_a and fn_b, called in turn on the same samples for 2 x seconds
    in all, so that other load on a shared machine slows both alike."""
    for s in samples:
        fn_a(s), fn_b(s)
    spent, calls = [0.0, 0.0], 0
    while sum(spent) < 2 * seconds:
        sample = samples[calls % len(samples)]
        for k, fn in enumerate((fn_a, fn_b)):
            start = time.perf_counter()
            fn(sample)
            spent[k] += time.perf_counter() - start
        calls += 1
    return calls / spent[0], calls / spent[1]


def compare_albumentations(base: list[dict], seconds: float) -> None:
    """samples/s of our presets and albumentations' on 256x256 and native-size images, and the ratios."""
    chains = albumentations_chains()
    ours = {name: build_pipeline(PRESETS[name]) for name in chains}
    print(f"{'chain':<16}{'images':<18}{'ours':>10}{'albumentations':>16}{'ours/albu':>11}  (samples/s)")
    for label, size in ALBU_SIZES.items():
        samples = resized(base, size)
        for name in chains:
            us, them = paired_rates(ours[name], chains[name], samples, seconds)
            print(f"{name:<16}{label:<18}{us:>10.1f}{them:>16.1f}{us / them:>11.2f}")
    start = time.perf_counter()
    preview_draws(samples[0], PRESETS["notebook_train"], n=8, seed=0)
    print(f"Augmentations page: 8 draws of notebook_train on one {label} image in "
          f"{(time.perf_counter() - start) * 1000:.0f} ms")


# ---------------------------------------------------------------- measuring


def load_samples(data: Path | None, n: int = 4) -> list[dict]:
    """n (image uint8 HxWx3, mask uint8 {0,1}) samples from the ISIC sample or demo images."""
    if data is None:
        from lesion_core.data.demo import generate_demo

        data = generate_demo(Path(tempfile.mkdtemp()) / "demo", n_per_class=2, size=320, seed=0)
    ids = [line.split(",")[0] for line in (data / "labels.csv").read_text().splitlines()[1:n + 1]]
    samples = []
    for sid in ids:
        image = read_image(data / "images" / f"{sid}.jpg")
        mask = read_mask(data / "masks" / f"{sid}.png", image.shape)
        samples.append({"image": image, "mask": mask, "label": 0, "id": sid})
    return samples


def resized(samples: list[dict], size: tuple[int, int]) -> list[dict]:
    h, w = size
    return [dict(s, image=np.asarray(Image.fromarray(s["image"]).resize((w, h), Image.BILINEAR)),
                 mask=np.asarray(Image.fromarray(s["mask"]).resize((w, h), Image.NEAREST))) for s in samples]


def rate(fn, samples: list[dict], seconds: float) -> float:
    """Calls per second of fn over the samples in turn, after one warm-up call each."""
    for s in samples:
        fn(s)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(samples[calls % len(samples)])
        calls += 1
    return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("LESION_LAB_ISIC_DEV")
    parser.add_argument("--data", type=Path, default=Path(default_data) if default_data else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = a DataLoader worker)")
    parser.add_argument("--against", default="both", choices=("notebook", "albumentations", "both"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)
    base = load_samples(args.data)
    if args.against != "notebook":
        import cv2

        cv2.setNumThreads(args.threads if args.threads > 1 else 0)  # 0: no cv2 thread pool, like 1 torch thread
        print(f"torch {torch.__version__}, {args.threads} thread(s), {len(base)} images from "
              f"{args.data or 'generated demo images'}, {args.seconds:g} s per figure")
        compare_albumentations(base, args.seconds)
        if args.against == "albumentations":
            return
    ours = build_pipeline(PRESETS["notebook_train"])
    fast = build_pipeline(PRESETS["default_train"])
    skin = build_pipeline([{"name": "ChangeSkin", "params": {"colour": [198, 134, 66]}}])
    source = args.data or "generated demo images"
    print(f"torch {torch.__version__}, {args.threads} thread(s), {len(base)} images from {source}, "
          f"{args.seconds:g} s per figure")
    print(f"{'size (h x w)':<14}{'notebook-style':>16}{'ours':>10}{'ratio':>8}{'default_train':>15}  (samples/s)")
    for size in SIZES:
        samples = resized(base, size)
        nb = rate(notebook_style, samples, args.seconds)
        us = rate(ours, samples, args.seconds)
        df = rate(fast, samples, args.seconds)
        print(f"{size[0]}x{size[1]:<10}{nb:>16.1f}{us:>10.1f}{us / nb:>7.1f}x{df:>15.1f}")
    print(f"{'skin change':<14}{'loop ms':>16}{'ours ms':>10}{'ratio':>8}")
    for size in SIZES:
        samples = resized(base, size)
        loop_ms = 1000 / rate(lambda s: _nb_change_skin(dict(s, image=util.img_as_float(s["image"])), (198, 134, 66)),
                              samples[:1], args.seconds)
        ours_ms = 1000 / rate(skin, samples, args.seconds)
        print(f"{size[0]}x{size[1]:<10}{loop_ms:>16.2f}{ours_ms:>10.2f}{loop_ms / ours_ms:>7.0f}x")
    page = resized(base, SIZES[1])[0]
    start = time.perf_counter()
    preview_draws(page, PRESETS["notebook_train"], n=8, seed=0)
    print(f"preview page: 8 draws of notebook_train on one 768x1024 image in "
          f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
