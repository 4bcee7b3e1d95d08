"""The fast paths of the joint transforms give the geometry of the plain ones: a rotation's
deferred resampling (flips, skin, rescale and crop folded into one pass) against resampling
after every step, the rotation against torchvision's, strided shrinking against a full
antialiased resize, and the index-based helpers against the torchvision calls they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from lesion_core import transforms as T
from lesion_core.transforms import kernels, lazy, steps
from lesion_core.transforms import pipeline as pipemod
from lesion_core.errors import TransformError

from test_transforms import GREEN, make_sample, misalignment, paint_lesion, step

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The notebook_train chain before ToTensor, and a variant whose crop reaches past the image.
NOTEBOOK_STEPS = T.image_steps(T.PRESETS["notebook_train"])
PADDED_STEPS = [step("RandomRotation", degrees=180, expand=True, crop_to_lesion=True),
                step("RandomHorizontalFlip", p=0.5), step("ChangeSkin", colour=[10, 200, 30]),
                step("Rescale", size=40), step("RandomCrop", size=[48, 64])]


def eager(spec) -> T.Pipeline:
    """The same pipeline resampling after every step: the reference for the deferred path."""
    pipeline = T.build_pipeline(spec)
    pipeline.defer = False
    return pipeline


def masks_agree(a: np.ndarray, b: np.ndarray, tol: int = 1) -> bool:
    """Every lesion pixel of each mask lies within tol pixels of the other's lesion."""
    square = np.ones((3, 3), bool)
    grown_a = ndimage.binary_dilation(a.astype(bool), square, iterations=tol)
    grown_b = ndimage.binary_dilation(b.astype(bool), square, iterations=tol)
    return not (a.astype(bool) & ~grown_b).any() and not (b.astype(bool) & ~grown_a).any()


def real_samples(root, n: int = 3, size: int = 0) -> list[dict]:
    """n real ISIC images with their lesion painted pure green (optionally upsampled to size)."""
    ids = [line.split(",")[0] for line in (root / "labels.csv").read_text().splitlines()[1:n + 1]]
    samples = []
    for sid in ids:
        with Image.open(root / "images" / f"{sid}.jpg") as im:
            image = im.convert("RGB")
        with Image.open(root / "masks" / f"{sid}.png") as m:
            mask = m.convert("L").resize(image.size, Image.NEAREST)
        if size:
            image, mask = image.resize((size, size), Image.BILINEAR), mask.resize((size, size), Image.NEAREST)
        mask = (np.asarray(mask) > 127).astype(np.uint8)
        samples.append({"image": paint_lesion(np.asarray(image), mask), "mask": mask, "label": 0, "id": sid})
    return samples


# --------------------------------------------------------------------------- deferred warp


@pytest.mark.parametrize("spec", [NOTEBOOK_STEPS, PADDED_STEPS], ids=["notebook_train", "padded crop"])
def test_deferred_resampling_draws_the_same_and_lands_within_a_pixel_of_resampling_every_step(spec):
    sample = make_sample(360, 480)  # a lesion about the rescale's size: bilinear edges stay thin
    fast, slow = T.build_pipeline(spec), eager(spec)
    for seed in range(12):
        torch.manual_seed(seed)
        out, params = fast.apply_with_params(sample)
        torch.manual_seed(seed)
        ref, ref_params = slow.apply_with_params(sample)
        assert params == ref_params, seed  # same angles, boxes, sizes, flips and tones
        assert out["image"].shape == ref["image"].shape and out["mask"].shape == ref["mask"].shape
        assert set(np.unique(out["mask"])) <= {0, 1}
        assert masks_agree(out["mask"], ref["mask"]), seed
        assert misalignment(out["image"], out["mask"], tol=2) == 0, seed
        # One bilinear pass instead of two: close, not equal (mostly the lesion's green edge).
        assert np.abs(out["image"].astype(int) - ref["image"].astype(int)).mean() < 12, seed


def test_deferred_resampling_ends_in_the_same_tensors_as_resampling_every_step():
    spec = T.PRESETS["notebook_train"]
    sample = make_sample(180, 240)
    for seed in range(4):
        torch.manual_seed(seed)
        out = T.build_pipeline(spec)(sample)
        torch.manual_seed(seed)
        ref = eager(spec)(sample)
        assert out["image"].dtype == torch.float32 and out["image"].shape == ref["image"].shape == (3, 224, 224)
        assert out["mask"].dtype == torch.float32 and set(out["mask"].unique().tolist()) <= {0.0, 1.0}
        assert masks_agree(out["mask"][0].numpy(), ref["mask"][0].numpy())


def test_real_isic_images_stay_aligned_through_the_deferred_rotation(isic_dev_root):
    """Rotated masks stay binary and on the painted lesion, at 256 px and upsampled 4x."""
    for size in (0, 1024):
        for sample in real_samples(isic_dev_root, size=size):
            for spec in (NOTEBOOK_STEPS, PADDED_STEPS):
                pipeline = T.build_pipeline(spec)
                for seed in range(3):
                    torch.manual_seed(seed)
                    out = pipeline(sample)
                    assert set(np.unique(out["mask"])) <= {0, 1}
                    assert out["mask"].any(), (sample["id"], seed)
                    assert misalignment(out["image"], out["mask"], tol=3) == 0, (sample["id"], size, seed)


def test_rotation_matches_torchvision_rotate_pixel_for_pixel():
    sample = make_sample(90, 120)
    for expand in (True, False):
        for angle in (17.0, -63.5, 90.0, 133.0, 180.0, -90.0):
            image = pipemod._to_state(sample)["image"]
            warp = lazy.rotation_warp((90, 120), angle, expand)
            ours = lazy.warp_pixels(image, warp, [0, 0, *warp.size], "bilinear")
            theirs = F.rotate_image(image, angle, InterpolationMode.BILINEAR, expand=expand)
            assert ours.shape == theirs.shape, (expand, angle)
            # OpenCV samples at 1/32-pixel fixed-point positions: at most one level, on a handful of pixels
            difference = (ours.int() - theirs.int()).abs()
            assert difference.max() <= 1 and (difference > 0).float().mean() < 1e-3, (expand, angle)


def test_rotated_lesion_window_holds_the_whole_rotated_lesion():
    rng = np.random.default_rng(0)
    for trial in range(100):
        h, w = (int(v) for v in rng.integers(20, 90, 2))
        yy, xx = np.mgrid[:h, :w]
        mask = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 4))):  # one to three blobs, some on the edge
            y, x, r = int(rng.integers(0, h)), int(rng.integers(0, w)), int(rng.integers(1, 12))
            mask[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = 255
        tensor = torch.from_numpy(mask)[None]
        warp = lazy.rotation_warp((h, w), float(rng.uniform(-180, 180)), bool(trial % 2))
        rotated = lazy.warp_pixels(tensor, warp, [0, 0, *warp.size], "nearest")[0].clone()
        top, left, height, width = lazy.rotated_lesion_window(tensor, warp)
        rotated[top:top + height, left:left + width] = 0
        assert not rotated.any(), trial


# --------------------------------------------------------------------------- resizing


def test_random_resized_crop_of_a_large_image_matches_resizing_the_crop_fully():
    """The strided shrink (every k-th pixel, then 1-2x antialiased) lands where torchvision's
    full antialiased resize of the same crop does: the mask exactly, the image within a pixel."""
    sample = make_sample(h=1600, w=2400)
    pipeline = T.build_pipeline([step("RandomResizedCrop", size=96)])
    state = pipemod._to_state(sample)
    for seed in range(6):
        torch.manual_seed(seed)
        out, params = pipeline.apply_with_params(sample)
        top, left, height, width = params[0]["box"]
        image = F.crop_image(state["image"], top, left, height, width)
        mask = F.crop_mask(state["mask"], top, left, height, width)
        ref_image = F.resize_image(image, [96, 96], antialias=True).permute(1, 2, 0).numpy()
        ref_mask = F.resize_mask(mask, [96, 96], InterpolationMode.NEAREST_EXACT)[0].numpy()
        np.testing.assert_array_equal(out["mask"], ref_mask)
        assert misalignment(out["image"], out["mask"]) == 0, seed
        green, ref_green = (np.all(i == GREEN, axis=-1) for i in (out["image"], ref_image))
        assert masks_agree(green, ref_green), seed


def test_resize_mask_picks_torchvisions_nearest_exact_pixels():
    generator = torch.Generator().manual_seed(0)
    for h, w, oh, ow in [(120, 160, 80, 106), (151, 173, 256, 293), (2000, 3000, 224, 224), (7, 9, 30, 11)]:
        mask = torch.randint(0, 2, (1, h, w), generator=generator, dtype=torch.uint8)
        for view in (mask, mask[:, 3:, 2:]):  # a crop of a larger mask too
            expected = F.resize_mask(view, [oh, ow], InterpolationMode.NEAREST_EXACT)
            assert torch.equal(kernels._resize_mask(view, (oh, ow)), expected), (h, w, oh, ow)


@pytest.mark.parametrize("scale, ratio, size", [((0.35, 1.0), (0.75, 4 / 3), (256, 256)),
                                                ((0.08, 1.0), (0.5, 2.0), (120, 160)),
                                                ((0.9, 1.0), (3.0, 4.0), (100, 30))])  # the fallback
def test_resized_crop_draws_torchvisions_windows(scale, ratio, size):
    crop = v2.RandomResizedCrop(224, scale=scale, ratio=ratio)
    for seed in range(50):
        torch.manual_seed(seed)
        expected = crop.make_params([torch.zeros(3, *size)])
        after = torch.rand(1)
        torch.manual_seed(seed)
        assert steps._resized_crop_params(crop, *size) == expected
        assert torch.equal(torch.rand(1), after)  # the same number of draws from the global RNG


# --------------------------------------------------------------------------- deferred turns


@pytest.mark.parametrize("spec", [
    T.PRESETS["default_train"],
    [step("RandomRotate90"), step("RandomHorizontalFlip"), step("RandomVerticalFlip"), step("RandomRotate90")],
    [step("RandomVerticalFlip"), step("RandomRotate90"), step("RandomCrop", size=[50, 40]), step("RandomRotate90")],
    [step("RandomRotate90"), step("ChangeSkin"), step("RandomHorizontalFlip", p=1.0), step("Rescale", size=30)],
], ids=["default_train", "turns and flips", "turns around a crop", "turn, skin, flip, rescale"])
def test_deferred_turns_and_flips_give_exactly_the_pixels_of_turning_every_step(spec):
    sample = make_sample(60, 90)
    for seed in range(24):
        torch.manual_seed(seed)
        out, params = T.build_pipeline(spec).apply_with_params(sample)
        torch.manual_seed(seed)
        ref, ref_params = eager(spec).apply_with_params(sample)
        assert params == ref_params
        for key in ("image", "mask"):
            assert np.array_equal(np.asarray(out[key]), np.asarray(ref[key])), (seed, key)


def test_a_pending_quarter_turn_is_torch_rot90():
    image = torch.arange(3 * 4 * 5).view(3, 4, 5)
    for k in range(4):
        state = {"image": image, "mask": image[:1]}
        if k:
            state = kernels.orient_state(state, k >= 2, k <= 2, k % 2 == 1)
        out = kernels.apply_orient(state)
        assert torch.equal(out["image"], torch.rot90(image, k, dims=(-2, -1)))
        assert torch.equal(out["mask"], torch.rot90(image[:1], k, dims=(-2, -1)))
        assert kernels.state_size(state) == tuple(out["image"].shape[-2:])


# --------------------------------------------------------------------------- OpenCV's kernels


def test_a_deferred_skin_tone_shifts_every_skin_pixel_and_no_lesion_pixel():
    """The tone is given on the warp's output: the skin's median takes the colour, lesion
    pixels and the padding past the image are what the same draw without the tone gives."""
    from skimage.color import rgb2lab

    sample = make_sample(180, 240)
    colour = [10, 200, 30]
    unpainted = [s for s in PADDED_STEPS if s["name"] != "ChangeSkin"]
    for seed in range(8):
        torch.manual_seed(seed)
        out, _ = T.build_pipeline(PADDED_STEPS).apply_with_params(sample)
        torch.manual_seed(seed)
        plain, _ = T.build_pipeline(unpainted).apply_with_params(sample)
        image, lesion = out["image"], out["mask"].astype(bool)
        black = np.all(plain["image"] == 0, axis=-1)
        np.testing.assert_array_equal(image[lesion | black], plain["image"][lesion | black])
        skin = ~lesion & ~black
        assert skin.any(), seed
        shifted = np.median(rgb2lab(image[skin].reshape(-1, 1, 3)).reshape(-1, 3), axis=0)
        assert np.abs(shifted - rgb2lab(np.array([[colour]], np.uint8))[0, 0]).max() < 4, seed


@pytest.mark.parametrize("h, w, k", [(1600, 2400, 6), (301, 457, 3), (90, 130, 4)])
def test_every_kth_pixel_is_the_strided_slice_whatever_the_memory_layout(h, w, k):
    image = torch.from_numpy(np.random.default_rng(k).integers(0, 256, (h, w, 3), dtype=np.uint8)).permute(2, 0, 1)
    for source in (image, image[:, 5:, 7:], image.contiguous()):  # pixels, a crop of them, planes
        expected = source[:, k // 2::k, k // 2::k]
        assert torch.equal(kernels._every_kth(source, k), expected), (h, w, k)


def test_a_random_crops_zoom_is_opencvs_bilinear_after_the_stride():
    """A training crop's zoom: every k-th pixel, then OpenCV's bilinear for the 1-2x left."""
    import cv2

    sample = make_sample(h=1600, w=2400)
    pipeline = T.build_pipeline([step("RandomResizedCrop", size=96)])
    for seed in range(4):
        torch.manual_seed(seed)
        out, params = pipeline.apply_with_params(sample)
        top, left, height, width = params[0]["box"]
        crop = sample["image"][top:top + height, left:left + width]
        k = int(min(height, width) / 96)
        picked = np.ascontiguousarray(crop[k // 2::k, k // 2::k])
        np.testing.assert_array_equal(out["image"], cv2.resize(picked, (96, 96), interpolation=cv2.INTER_LINEAR))


def test_rotating_an_image_wider_than_opencv_can_address_is_a_clear_error():
    sample = {"image": np.zeros((2, kernels.WARP_MAX_SIDE + 10, 3), np.uint8), "mask": None, "id": "strip.png"}
    pipeline = T.build_pipeline([step("RandomRotation", degrees=10, expand=False, crop_to_lesion=False)])
    with pytest.raises(TransformError, match="too large|under 32767"):
        pipeline(sample)


def test_a_lesion_turned_off_the_canvas_is_no_lesion_not_an_error_or_a_phantom():
    """Without expand, a rotation can turn a corner lesion out of the canvas: then the crop to
    the lesion finds nothing and keeps the whole canvas, as torchvision's rotate of the mask
    says (but for a sliver along the canvas's edge, where OpenCV's 1/32-pixel positions round
    the other way); a lesion is never found outside the canvas."""
    image = np.full((60, 90, 3), 100, np.uint8)
    mask = np.zeros((60, 90), np.uint8)
    mask[0:3, 0:3] = 1
    image[mask == 1] = GREEN
    pipeline = T.build_pipeline([step("RandomRotation", degrees=180, expand=False, crop_to_lesion=True)])
    gone = 0
    for seed in range(120):
        torch.manual_seed(seed)
        out, params = pipeline.apply_with_params({"image": image, "mask": mask})
        kept = int(F.rotate_mask(torch.from_numpy(mask)[None], params[0]["angle"], expand=False).sum())
        box = params[0].get("box")
        if box is None:
            assert kept == 0 and not out["mask"].any() and out["image"].shape == (60, 90, 3), seed
            gone += 1
            continue
        top, left, height, width = box
        assert top >= 0 and left >= 0 and top + height <= 60 and left + width <= 90, (seed, box)
        assert out["mask"].any(), seed
        if kept == 0:  # a sliver on the edge at most
            assert height * width <= 10 and (top == 0 or left == 0 or top + height == 60 or left + width == 90), seed
    assert 0 < gone < 120, gone  # both cases were drawn
