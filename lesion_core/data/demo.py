"""Built-in demo data: synthetic dermoscopy-like images with exact lesion masks.

The three classes differ the way the real ISIC ones do, so a small CNN can learn them and
augmentations have something to show:
- nevus: round or oval, one even brown, smooth soft border;
- melanoma: asymmetric, irregular border, patches of dark brown, black, blue-grey and red;
- seborrheic keratosis: paler tan, waxy, speckled "stuck-on" texture, sharp edge.
Lesion colours overlap between classes on purpose, so mean colour alone is not enough.
Every image has a varied skin tone, a few dark hairs and dermoscope vignetting.

Everything is vectorised numpy seeded per image: the same seed gives the same files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from lesion_core import csvsafe
from lesion_core.errors import DataError
from lesion_core.paths import cache_dir

# Bump when the generator's output changes, so demo_dir() regenerates instead of reusing.
DEMO_VERSION = "v1"

# Skin tones from light to dark (RGB), sampled and jittered per image.
_SKIN_TONES = np.array(
    [[236, 200, 180], [224, 178, 150], [205, 160, 125], [176, 128, 95], [140, 98, 70]], float
)
_NEVUS_BROWN = np.array([120, 75, 45], float)
_MELANOMA_COLOURS = np.array(
    [[92, 56, 40], [38, 28, 28], [104, 108, 124], [150, 82, 80]], float
)  # dark brown, black, blue-grey, red
_SK_TAN = np.array([175, 140, 100], float)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1], float32 (size, size): a small grid upsampled bicubically."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    up = Image.fromarray(grid, mode="F").resize((size, size), Image.BICUBIC)
    return np.clip(np.asarray(up), -1, 1)


def _border_radius(rng: np.random.Generator, theta: np.ndarray, kind: int) -> np.ndarray:
    """Relative lesion radius r(theta) around 1: few low harmonics for nevus, many for melanoma.

    The harmonics are summed on a table of 1024 angles and interpolated per pixel, which is
    several times faster than evaluating cosines over the whole image.
    """
    # (harmonic orders, amplitude range) per class; melanoma's high orders make it ragged.
    harmonics = {
        0: (range(2, 4), (0.02, 0.10)),
        1: (range(1, 9), (0.03, 0.12)),
        2: (range(2, 6), (0.02, 0.08)),
    }[kind]
    angles = np.linspace(-np.pi, np.pi, 1025)
    table = np.ones_like(angles)
    for order in harmonics[0]:
        amplitude = rng.uniform(*harmonics[1]) / (1 if kind == 1 else order**0.5)
        table += amplitude * np.cos(order * angles + rng.uniform(0, 2 * np.pi))
    return np.interp(theta, angles, table).astype(np.float32)


def _lesion_colour(rng, kind, inside, size, tone) -> np.ndarray:
    """The lesion's RGB colour field, float (size, size, 3), before blending with skin."""
    # Darker skin darkens the lesion too, so lesion colour alone does not give the class away.
    tone_shift = (tone.mean() - 190) * 0.35
    if kind == 0:
        colour = _NEVUS_BROWN * rng.uniform(0.55, 1.45) + tone_shift
        # One even colour, a touch darker in the middle (as a pigment network would look).
        field = np.broadcast_to(colour, (size, size, 3)) * (1 - 0.12 * inside[..., None])
        return field + 6 * _smooth_noise(rng, size, 6)[..., None]
    if kind == 1:
        # Patches: a softmax over one noise field per colour gives blotches that blend.
        fields = np.stack([_smooth_noise(rng, size, rng.integers(4, 8)) for _ in _MELANOMA_COLOURS])
        fields += rng.uniform(-0.3, 0.3, (len(_MELANOMA_COLOURS), 1, 1))
        weights = np.exp(8 * fields)
        weights /= weights.sum(axis=0)
        colours = _MELANOMA_COLOURS * rng.uniform(0.8, 1.2, (len(_MELANOMA_COLOURS), 1))
        field = np.einsum("khw,kc->hwc", weights, colours) + tone_shift
        return field + 10 * _smooth_noise(rng, size, 12)[..., None]
    # Keratoses range from pale tan to brown, overlapping the nevus browns.
    colour = _SK_TAN + rng.uniform(0, 0.7) * (_NEVUS_BROWN - _SK_TAN)
    colour = colour * rng.uniform(0.7, 1.15) + tone_shift
    # Still visibly darker than the skin around it, as keratoses are.
    colour *= min(1.0, 0.85 * tone.mean() / colour.mean())
    field = np.broadcast_to(colour, (size, size, 3)).copy()
    # Waxy, "stuck-on" texture: fine speckle, bright milia-like dots, dark comedo-like pits.
    field += 18 * rng.standard_normal((size, size, 1))
    field += 25 * _smooth_noise(rng, size, max(8, size // 10))[..., None]
    dots = rng.random((size, size))
    field[dots > 0.992] = [235, 225, 200]
    field[dots < 0.006] = [60, 45, 35]
    return field


def _draw_hairs(rng: np.random.Generator, image: np.ndarray) -> None:
    """Paint 0-5 dark thin curved hairs (quadratic Bezier curves) across the image, in place."""
    size = image.shape[0]
    t = np.linspace(0, 1, size * 3)[:, None]
    for _ in range(rng.integers(0, 6)):
        p0, p1, p2 = rng.uniform(-0.1, 1.1, (3, 2)) * size
        points = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        width = max(1, size // 160)
        colour = rng.uniform(15, 60, 3)
        for dx in range(width):
            for dy in range(width):
                xy = np.round(points + [dx, dy]).astype(int)
                ok = ((xy >= 0) & (xy < size)).all(axis=1)
                image[xy[ok, 1], xy[ok, 0]] = colour


def make_sample(kind: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic sample of class `kind`: (image uint8 (size, size, 3), mask uint8 {0,1})."""
    coords = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")

    tone = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.92, 1.05)
    skin = (tone + 10 * _smooth_noise(rng, size, 5)[..., None]).astype(np.float32)

    centre = rng.uniform(-0.15, 0.15, 2)
    base = rng.uniform(0.28, 0.5)
    aspect = rng.uniform(1.0, 1.35) if kind != 1 else rng.uniform(1.0, 1.6)
    angle = rng.uniform(0, np.pi)
    dx, dy = xx - centre[0], yy - centre[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) * aspect
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    radius = base * _border_radius(rng, theta, kind)
    if kind == 1:
        # Ragged, asymmetric edge: high-frequency noise on the radius.
        radius *= 1 + 0.12 * _smooth_noise(rng, size, 24)

    # Soft edge width: nevus soft, melanoma medium, seborrheic keratosis sharp.
    edge = {0: 0.05, 1: 0.03, 2: 0.008}[kind]
    alpha = np.clip(0.5 + (radius - rho) / np.float32(edge), 0, 1)
    mask = (alpha >= 0.5).astype(np.uint8)
    inside = np.clip(1 - rho / np.maximum(radius, 1e-6), 0, 1)

    lesion = _lesion_colour(rng, kind, inside, size, tone).astype(np.float32)
    image = skin * (1 - alpha[..., None]) + lesion * alpha[..., None]
    _draw_hairs(rng, image)

    # Dermoscope vignetting: the round field of view fades to black in the corners.
    field_radius = rng.uniform(1.0, 1.5)  # above 1.42 the corners stay clear
    fade = np.clip((field_radius - np.hypot(xx, yy)) / 0.12, 0, 1)
    image *= fade[..., None]
    return np.clip(image, 0, 255).astype(np.uint8), mask


def generate_demo(out_dir, n_per_class: int = 100, size: int = 320, seed: int = 0) -> Path:
    """Write the demo dataset in the notebook layout into out_dir (new or empty); return it.

    Layout: labels.csv (id,label), images/<id>.jpg, masks/<id>.png (0/255). Classes take
    turns (0, 1, 2, 0, ...) so any prefix of the CSV is balanced.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} is not empty or not a folder; choose a new or empty folder "
                        "for the demo data")
    if n_per_class < 1 or size < 32:
        raise DataError("the demo needs n_per_class >= 1 and size >= 32")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    rows = []
    for index in range(n_per_class * 3):
        label = index % 3
        sample_id = f"demo_{index:04d}"
        # One independent stream per image: changing n_per_class keeps earlier images the same.
        rng = np.random.default_rng([seed, index])
        image, mask = make_sample(label, size, rng)
        Image.fromarray(image).save(out / "images" / f"{sample_id}.jpg", quality=92)
        Image.fromarray(mask * 255).save(out / "masks" / f"{sample_id}.png")
        rows.append((sample_id, label))
    (out / "labels.csv").write_text(csvsafe.write_rows([("id", "label")] + rows), encoding="utf-8")
    return out


def demo_dir() -> Path:
    """The default demo dataset (300 images, 320 px) in the cache, generated once and reused.

    Generated into a temporary folder and renamed into place, so an interrupted generation
    never leaves a half dataset that later calls would reuse.
    """
    final = cache_dir() / f"demo-{DEMO_VERSION}"
    if (final / "labels.csv").is_file():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=cache_dir()))
    try:
        generate_demo(tmp / "demo")
        try:
            os.rename(tmp / "demo", final)
        except OSError:
            # Another process finished first; its copy is identical (same seed).
            if not (final / "labels.csv").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
