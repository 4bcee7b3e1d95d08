"""Joint transforms: every registry entry keeps image and mask aligned and masks binary;
the notebook's transforms behave as specified with its bugs fixed; specs are checked."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from lesion_core import transforms as T
from lesion_core.errors import TransformError

GREEN = np.array([0, 255, 0], np.uint8)

# Parameters that make every resizing step shrink (never enlarge) the 120x160 test image, so
# interpolated lesion borders stay within one output pixel of the mask's border.
ALIGN_PARAMS = {
    "RandomCrop": {"size": [60, 90]},
    "CenterCrop": {"size": 70},
    "Rescale": {"size": 80},
    "RandomCenterCrop": {"min_size": 40, "max_size": 100},
    "RandomResizedCrop": {"size": 48},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_sample(h: int = 120, w: int = 160, seed: int = 0, sid: str = "synthetic") -> dict:
    """An off-centre elliptic lesion painted pure green; random skin with red >= 30, so no
    pixel outside the lesion is pure green."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    mask = (((yy - 0.4 * h) / (0.25 * h)) ** 2 + ((xx - 0.6 * w) / (0.2 * w)) ** 2 <= 1).astype(np.uint8)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image[..., 0] = np.maximum(image[..., 0], 30)
    image[mask == 1] = GREEN
    return {"image": image, "mask": mask, "label": 1, "id": sid}


def paint_lesion(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A real image with its lesion painted pure green and any pure green outside nudged off it."""
    image = image.copy()
    image[np.all(image == GREEN, axis=-1)] = (0, 254, 0)
    image[mask != 0] = GREEN
    return image


def misalignment(image: np.ndarray, mask: np.ndarray, tol: int = 1) -> int:
    """Pixels where the pure-green set and the mask disagree by more than tol pixels."""
    green = np.all(image == GREEN, axis=-1)
    inside = mask.astype(bool)
    square = np.ones((3, 3), bool)
    grown = ndimage.binary_dilation(inside, square, iterations=tol)
    shrunk = ndimage.binary_erosion(inside, square, iterations=tol)
    return int((green & ~grown).sum() + (shrunk & ~green).sum())


# Steps that change the lesion's colours too (so its pure green is no guide to alignment).
RECOLOURING = ("ColorJitter", "ShadesOfGrey")


def step(name: str, **params) -> dict:
    return {"name": name, "params": params}


def registry_spec(name: str, params: dict | None = None) -> list[dict]:
    spec = [step(name, **(params or {}))]
    return [step("ToTensor")] + spec if name == "Normalize" else spec


# --------------------------------------------------------------------------- whole registry


@pytest.mark.parametrize("name", list(T.REGISTRY))
def test_registry_entry_defaults_give_right_shapes_dtypes_and_binary_masks(name):
    info = T.REGISTRY[name]
    sample = make_sample()
    # Pickled and back, as DataLoader workers started with "spawn" receive it.
    pipeline = pickle.loads(pickle.dumps(T.build_pipeline(registry_spec(name))))
    for seed in range(5):
        torch.manual_seed(seed)
        out, params = pipeline.apply_with_params(sample)
        assert isinstance(params[-1], dict)
        json.dumps(params)  # params.json must be able to store them
        image, mask = out["image"], out["mask"]
        if info.kind == "tensor":
            assert image.dtype == torch.float32 and image.shape == (3, 120, 160)
            assert mask.dtype == torch.float32 and mask.shape == (1, 120, 160)
            assert set(mask.unique().tolist()) <= {0.0, 1.0}
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
            assert set(np.unique(mask)) <= {0, 1}
            expected = info.cls(**T.validate_spec(registry_spec(name))[0]["params"]).output_size((120, 160))
            if expected is not None:
                assert image.shape[:2] == expected
        assert out["label"] == 1 and out["id"] == "synthetic"


@pytest.mark.parametrize("name", [n for n, i in T.REGISTRY.items() if i.kind != "tensor"])
def test_registry_entry_keeps_lesion_and_mask_aligned_over_many_seeds(name):
    sample = make_sample()
    pipeline = T.build_pipeline([step(name, **ALIGN_PARAMS.get(name, {}))])
    lesion_seen = 0
    for seed in range(30):
        torch.manual_seed(seed)
        out = pipeline(sample)
        if name in RECOLOURING:  # colours change, geometry must not
            np.testing.assert_array_equal(out["mask"], sample["mask"])
            continue
        assert set(np.unique(out["mask"])) <= {0, 1}
        assert misalignment(out["image"], out["mask"]) == 0, f"seed {seed}"
        lesion_seen += ndimage.binary_erosion(out["mask"].astype(bool)).sum() > 0
    if name not in RECOLOURING:
        assert lesion_seen >= 25  # the check above compared real lesions, not empty crops


@pytest.mark.parametrize("name", list(T.REGISTRY))
def test_registry_entry_without_mask_transforms_image_or_says_it_needs_one(name):
    sample = dict(make_sample(), mask=None, id="ISIC_0000042")
    pipeline = T.build_pipeline(registry_spec(name))
    if T.REGISTRY[name].needs_mask:
        with pytest.raises(TransformError, match=r"needs a lesion mask; sample ISIC_0000042 has none"):
            pipeline(sample)
    else:
        out = pipeline(sample)
        channels = out["image"].shape[0 if T.REGISTRY[name].kind == "tensor" else -1]
        assert out["mask"] is None and channels == 3


def test_rotation_cropping_to_the_lesion_needs_a_mask():
    sample = dict(make_sample(), mask=None, id="ISIC_0000043")
    with pytest.raises(TransformError, match=r"step 1 \(RandomRotation\) needs a lesion mask; sample ISIC_0000043"):
        T.build_pipeline([step("RandomRotation", crop_to_lesion=True)])(sample)


def test_registry_describes_every_parameter_for_the_ui():
    for info in T.REGISTRY.values():
        assert info.help and info.kind in {"geometric", "colour", "tensor"}
        for p in info.params:
            assert p.type in {"int", "float", "bool", "int_or_pair", "colour", "floats3"} and p.help
        assert T.validate_spec(registry_spec(info.name, info.defaults()))[-1]["params"] == info.defaults()


def test_editing_defaults_or_a_canonical_spec_leaves_the_registry_alone():
    T.REGISTRY["ChangeSkin"].defaults()["colour"][0] = 1
    T.validate_spec([step("ChangeSkin")])[0]["params"]["colour"][1] = 2
    assert T.REGISTRY["ChangeSkin"].defaults()["colour"] == [198, 134, 66]


def test_alignment_check_catches_the_notebooks_separate_draws():
    """Rotating image and mask in two calls (the notebook's bug) draws two angles: caught."""
    sample = make_sample()
    rotate = T.build_pipeline([step("RandomRotation", degrees=180, expand=False)])
    torch.manual_seed(0)
    image = rotate(sample)["image"]
    mask = rotate(sample)["mask"]  # second call, second angle
    assert misalignment(image, mask) > 100
    assert misalignment(image, mask, tol=3) > 100  # even the slack the real-image test allows


def test_rotation_with_crop_to_lesion_ends_tight_around_the_lesion():
    sample = make_sample()
    pipeline = T.build_pipeline([step("RandomRotation", degrees=180, expand=True, crop_to_lesion=True)])
    for seed in range(10):
        torch.manual_seed(seed)
        out, params = pipeline.apply_with_params(sample)
        mask = out["mask"]
        assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
        assert params[0]["box"][2:] == list(mask.shape)


# --------------------------------------------------------------------------- real images


def test_real_isic_images_stay_aligned(isic_dev_root):
    ids = [line.split(",")[0] for line in (isic_dev_root / "labels.csv").read_text().splitlines()[1:4]]
    pipelines = [T.build_pipeline(T.image_steps(T.PRESETS[name])) for name in ("notebook_train", "default_train")]
    pipelines.append(T.build_pipeline([step("RandomRotation", degrees=180, expand=True)]))
    for sid in ids:
        with Image.open(isic_dev_root / "images" / f"{sid}.jpg") as im:
            im.draft("RGB", (512, 512))  # real images are big; half or quarter size is plenty here
            image = np.asarray(im.convert("RGB"))
        with Image.open(isic_dev_root / "masks" / f"{sid}.png") as m:
            mask = (np.asarray(m.convert("L").resize(image.shape[1::-1], Image.NEAREST)) > 127).astype(np.uint8)
        sample = {"image": paint_lesion(image, mask), "mask": mask, "label": 0, "id": sid}
        for pipeline in pipelines:
            for seed in range(4):
                torch.manual_seed(seed)
                out = pipeline(sample)
                assert set(np.unique(out["mask"])) <= {0, 1}
                # Skin tones replace the skin, never the lesion, so green still marks it. Three
                # pixels of slack: a bilinear rotation (1 px) then up to 1.8x upscaling of the
                # 256-px dev images; a wrong angle or flip moves hundreds of pixels (see above).
                assert misalignment(out["image"], out["mask"], tol=3) == 0, (sid, pipeline, seed)


# --------------------------------------------------------------------------- skin


def test_change_skin_paints_only_non_lesion_pixels():
    sample = make_sample()
    original = sample["image"].copy()
    out = T.build_pipeline([step("ChangeSkin", colour=[10, 20, 30])])(sample)
    lesion = sample["mask"] == 1
    np.testing.assert_array_equal(out["image"][lesion], original[lesion])
    assert not (out["image"][~lesion] == original[~lesion]).all()
    np.testing.assert_array_equal(sample["image"], original)  # the input is not modified


def lab(pixels: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(pixels, np.uint8).reshape(-1, 1, 3)).reshape(-1, 3)


@pytest.mark.parametrize("tone", [(84, 53, 38), (255, 224, 189), (198, 134, 66)])
def test_a_skin_tone_keeps_the_skins_texture_on_real_images(isic_dev_root, tone):
    """The skin takes the tone as its median colour (in CIELAB) and keeps its pores, hairs and
    shading: its lightness varies as before, pixel for pixel (not one flat colour)."""
    from lesion_core import data
    from lesion_core.data import skin

    for record in data.load_dataset(isic_dev_root).records[:6]:
        image = data.read_image(record.image_path, None)
        mask = data.read_mask(record.mask_path, image.shape[:2])
        out = T.build_pipeline([step("ChangeSkin", colour=list(tone))])(
            {"image": image, "mask": mask, "label": 0, "id": record.id})["image"]
        np.testing.assert_array_equal(out[mask == 1], image[mask == 1])
        target = lab([tone])[0]
        before, after = lab(image[mask == 0]), lab(out[mask == 0])
        keep = before[:, 0] >= 8  # (the dermoscope's black vignette is no skin and stays)
        assert np.abs(np.median(after[keep], axis=0) - target).max() < 3, record.id
        assert abs(skin.image_ita(out, mask) - skin.ita_from_lab(target[0], target[2])) < 3, record.id
        # the texture: the lightness moves with the original's, with most of its spread
        assert np.corrcoef(before[keep, 0], after[keep, 0])[0, 1] > 0.9, record.id
        assert after[keep, 0].std() > 0.6 * before[keep, 0].std(), record.id


@pytest.mark.parametrize("colour, expected", [(300, [44, 44, 44]), ([256, -1, 513], [0, 255, 1])])
def test_change_skin_takes_each_colour_value_mod_256(colour, expected):
    spec = T.validate_spec([step("ChangeSkin", colour=colour)])
    assert spec[0]["params"]["colour"] == expected
    sample = make_sample(16, 16)
    sample["image"][sample["mask"] == 0] = 128  # flat skin: shifted to the tone, it is the tone
    out = T.build_pipeline(spec)(sample)
    assert np.abs(out["image"][out["mask"] == 0].astype(int) - expected).max() <= 2


def test_random_change_skin_draws_every_tone_of_the_palette():
    assert len(T.SKIN_TONES) == 63 and len(set(T.SKIN_TONES)) == 63
    sample = make_sample(16, 16)
    skin = sample["mask"] == 0
    pipeline = T.build_pipeline([step("RandomChangeSkin")])
    torch.manual_seed(0)
    seen = set()
    for _ in range(2000):
        out, params = pipeline.apply_with_params(sample)
        tone = tuple(params[0]["tone"])
        assert (tone == (0, 0, 0)) == np.array_equal(out["image"][skin], sample["image"][skin])
        seen.add(tone)
    assert seen == set(T.SKIN_TONES)


# --------------------------------------------------------------------------- colour constancy


def p_means(image: np.ndarray, p: int) -> np.ndarray:
    return ((image.reshape(-1, 3) / 255.0) ** p).mean(axis=0) ** (1 / p)


def test_shades_of_grey_turns_a_tinted_light_grey_and_leaves_a_grey_one_alone(isic_dev_root):
    pipeline = T.build_pipeline([step("ShadesOfGrey", p=6)])
    for line in (isic_dev_root / "labels.csv").read_text().splitlines()[1:4]:
        with Image.open(isic_dev_root / "images" / f"{line.split(',')[0]}.jpg") as im:
            real = np.asarray(im.convert("RGB"))
        out = pipeline({"image": real, "mask": None})["image"]
        assert np.ptp(p_means(out, 6)) < 0.01  # its light is grey now
        # The same scene under a bluish light is corrected to the same colours (its brightness
        # may differ: the correction keeps the light's strength).
        tinted = (real * np.array([0.7, 0.85, 1.0])).astype(np.uint8)
        assert np.ptp(p_means(tinted, 6)) > 0.05
        again = pipeline({"image": tinted, "mask": None})["image"]
        assert np.ptp(p_means(again, 6)) < 0.01
        assert np.abs(again / again.mean() - out / out.mean()).mean() < 0.02
    # A grey-lit image is left as it is.
    grey = np.broadcast_to(np.linspace(20, 230, 64, dtype=np.uint8)[:, None, None], (64, 80, 3)).copy()
    unchanged, params = pipeline.apply_with_params({"image": grey, "mask": None})
    np.testing.assert_array_equal(unchanged["image"], grey)
    assert params[0]["gain"] == [1.0, 1.0, 1.0]


def test_shades_of_grey_is_deterministic_kept_for_evaluation_and_safe_on_black():
    sample = make_sample()
    pipeline = T.build_pipeline([step("ShadesOfGrey", p=6)])
    torch.manual_seed(0)
    first = pipeline(sample)
    torch.manual_seed(1)
    np.testing.assert_array_equal(pipeline(sample)["image"], first["image"])
    np.testing.assert_array_equal(first["mask"], sample["mask"])
    spec = [step("ShadesOfGrey", p=4), *T.PRESETS["default_train"]]
    assert T.eval_spec(spec)[0] == step("ShadesOfGrey", p=4)  # evaluation sees the same colours
    black = dict(sample, image=np.zeros_like(sample["image"]))
    out, params = pipeline.apply_with_params(black)
    assert not out["image"].any() and params[0]["gain"] == [1.0, 1.0, 1.0]
    # A channel with no light at all: nothing to balance against, the image is kept.
    red = sample["image"].copy()
    red[..., 2] = 0
    np.testing.assert_array_equal(pipeline(dict(sample, image=red))["image"], red)


# --------------------------------------------------------------------------- crops


def crop_sample(h: int, w: int, top: int, left: int, lh: int, lw: int) -> dict:
    image = np.arange(h * w * 3, dtype=np.uint32).reshape(h, w, 3).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[top:top + lh, left:left + lw] = 1
    return {"image": image, "mask": mask, "label": 0, "id": "c"}


@pytest.mark.parametrize("border, box", [(3, [17, 27, 16, 26]), ([2, 5], [18, 25, 14, 30])])
def test_crop_by_mask_uses_by_for_top_and_bottom_and_bx_for_left_and_right(border, box):
    sample = crop_sample(60, 80, top=20, left=30, lh=10, lw=20)
    out, params = T.build_pipeline([step("CropByMask", border=border)]).apply_with_params(sample)
    assert params[0]["box"] == box
    top, left, h, w = box
    np.testing.assert_array_equal(out["image"], sample["image"][top:top + h, left:left + w])
    np.testing.assert_array_equal(out["mask"], sample["mask"][top:top + h, left:left + w])


def test_crop_by_mask_clamps_the_border_at_image_edges():
    sample = crop_sample(40, 50, top=0, left=45, lh=10, lw=5)  # touches the top and right edges
    out, params = T.build_pipeline([step("CropByMask", border=8)]).apply_with_params(sample)
    assert params[0]["box"] == [0, 37, 18, 13]
    assert out["image"].shape == (18, 13, 3)


def test_crop_by_mask_leaves_a_sample_with_an_empty_mask_unchanged():
    sample = crop_sample(40, 50, 0, 0, 0, 0)
    out, params = T.build_pipeline([step("CropByMask", border=5)]).apply_with_params(sample)
    assert params[0]["box"] is None
    np.testing.assert_array_equal(out["image"], sample["image"])
    np.testing.assert_array_equal(out["mask"], sample["mask"])


def test_random_crop_pads_an_image_smaller_than_the_crop():
    sample = crop_sample(20, 30, 5, 5, 5, 5)
    out = T.build_pipeline([step("RandomCrop", size=[40, 36])])(sample)
    assert out["image"].shape == (40, 36, 3) and out["mask"].shape == (40, 36)
    assert out["mask"].sum() == 25  # the whole lesion, nothing invented in the padding


def test_random_center_crop_draws_a_new_size_on_every_call():
    pipeline = T.build_pipeline([step("RandomCenterCrop", min_size=20, max_size=60)])
    torch.manual_seed(0)
    sizes = []
    for _ in range(20):
        out, params = pipeline.apply_with_params(make_sample())
        assert out["image"].shape[:2] == (params[0]["size"],) * 2
        sizes.append(params[0]["size"])
    assert len(set(sizes)) > 5 and min(sizes) >= 20 and max(sizes) <= 60


@pytest.mark.parametrize("size, shape", [(60, (60, 80)), ([50, 70], (50, 70))])
def test_rescale_int_sets_the_shorter_side_and_pair_the_exact_size(size, shape):
    out = T.build_pipeline([step("Rescale", size=size)])(make_sample())
    assert out["image"].shape[:2] == shape and set(np.unique(out["mask"])) == {0, 1}


# --------------------------------------------------------------------------- draws


def test_same_seed_gives_same_draws_and_another_seed_other_draws():
    pipeline = T.build_pipeline(T.PRESETS["notebook_train"])
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        runs.append(pipeline.apply_with_params(make_sample()))
    (a, pa), (b, pb), (c, pc) = runs
    assert pa == pb and torch.equal(a["image"], b["image"])
    assert pa != pc


def test_each_preview_draw_says_how_much_of_the_lesion_it_keeps():
    sample = make_sample(100, 200)
    sample["mask"][:] = 0
    sample["mask"][40:60, :] = 1  # a band across the whole width
    def kept(spec):
        return [out["lesion_kept"] for out, _ in T.preview_draws(sample, spec, n=6, seed=3)]
    # resizing, flips and turns keep it all (nearest-neighbour rounding aside)
    assert all(k > 0.97 for k in kept([step("Rescale", size=50), step("RandomRotate90"), step("RandomHorizontalFlip")]))
    # a 100-px window of the 200-px band keeps half of it, at any scale before or after
    assert kept([step("RandomCrop", size=100)]) == pytest.approx([0.5] * 6, abs=0.01)
    assert kept([step("Rescale", size=50), step("RandomCrop", size=50), step("Rescale", size=80)]) == pytest.approx(
        [0.5] * 6, abs=0.03)
    # a random resized window keeps its share of the band whatever it is resized to
    for out, params in T.preview_draws(sample, [step("RandomResizedCrop", size=64, scale_min=0.2, scale_max=0.5,
                                                     ratio_min=1.0, ratio_max=1.0)], n=6, seed=1):
        top, left, h, w = params[0]["box"]
        inside = np.count_nonzero(sample["mask"][top:top + h, left:left + w]) / np.count_nonzero(sample["mask"])
        assert out["lesion_kept"] == pytest.approx(inside, abs=0.03)
    sample["mask"] = None
    assert kept([step("RandomCrop", size=100)]) == [None] * 6


class _Angles(torch.utils.data.Dataset):
    """The same sample 8 times; each item is the angle its rotation drew."""

    def __init__(self):
        self.pipeline = T.build_pipeline([step("RandomRotation", degrees=180, expand=False)])
        self.sample = make_sample(16, 16)

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return self.pipeline.apply_with_params(self.sample)[1][0]["angle"]


def test_dataloader_workers_draw_different_angles_reproducibly():
    """Torch seeds each worker's RNG from the loader's generator: draws differ between workers
    (no duplicated augmentations, numpy's classic trap) and repeat with the same generator."""
    def angles(seed):
        loader = torch.utils.data.DataLoader(_Angles(), batch_size=None, num_workers=2,
                                             generator=torch.Generator().manual_seed(seed))
        return [float(a) for a in loader]

    first = angles(0)
    assert len(set(first)) == 8
    assert angles(0) == first and angles(1) != first


def test_preview_draws_are_seeded_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    draws = T.preview_draws(make_sample(), T.PRESETS["notebook_train"], n=4, seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    again = T.preview_draws(make_sample(), T.PRESETS["notebook_train"], n=4, seed=1)
    assert len(draws) == 4 and [p for _, p in draws] == [p for _, p in again]
    assert all(s["image"].dtype == np.uint8 for s, _ in draws)  # ToTensor/Normalize left out


def test_masks_given_as_0_255_come_out_as_0_1():
    sample = make_sample()
    sample["mask"] = sample["mask"] * 255
    out = T.build_pipeline([step("RandomHorizontalFlip", p=1.0)])(sample)
    np.testing.assert_array_equal(out["mask"], sample["mask"][:, ::-1] // 255)


def test_read_only_and_mirrored_input_arrays_are_accepted_and_left_alone():
    sample = make_sample()
    original = sample["image"].copy()
    sample["image"] = sample["image"][:, ::-1]  # negative strides, which torch.from_numpy refuses
    sample["image"].flags.writeable = False
    out = T.build_pipeline([step("ChangeSkin", colour=0)])(sample)
    assert out["image"][sample["mask"] == 0].mean() < 0.5 * original[sample["mask"] == 0].mean()
    np.testing.assert_array_equal(sample["image"], original[:, ::-1])


def test_a_sample_that_is_not_uint8_rgb_is_refused():
    sample = dict(make_sample(), image=np.zeros((10, 10, 3), np.float32))
    with pytest.raises(TransformError, match="uint8 HxWx3"):
        T.build_pipeline([step("RandomRotate90")])(sample)


# --------------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "RandomCrop"}, "a pipeline is a list"),
        (["RandomCrop"], r"step 1: expected"),
        ([step("CenterCrop"), step("RandomRotaton")],
         r"step 2 \(RandomRotaton\): unknown transform; did you mean RandomRotation"),
        ([step("CropByMask", brder=3)], r"step 1 \(CropByMask\): unknown parameter 'brder'"),
        ([step("RandomRotation", expand=1)], r"step 1 \(RandomRotation\): parameter 'expand' must be true or false"),
        ([step("RandomCrop", size="224")], r"parameter 'size' must be an integer or a list of two integers"),
        ([step("RandomCrop", size=[224, 224, 3])], r"parameter 'size' must be an integer or a list of two"),
        ([step("RandomHorizontalFlip", p=1.5)], r"step 1 \(RandomHorizontalFlip\): parameter 'p' must be between 0 and 1"),
        ([step("CropByMask", border=-1)], r"parameter 'border' must be between"),
        ([step("Normalize", mean=[0.5, 0.5])], r"parameter 'mean' must be a list of three numbers"),
        ([step("RandomCenterCrop", min_size=300, max_size=200)], r"min_size \(300\) is larger than max_size"),
        ([{"name": "RandomCrop", "params": [224]}], r"step 1 \(RandomCrop\): params must be an object"),
        ([{"name": "RandomCrop", "param": {}}], r"unexpected keys \['param'\]"),
        ([step("ToTensor"), step("RandomCrop")], r"step 2 \(RandomCrop\) comes after ToTensor"),
        ([step("Normalize")], r"step 1 \(Normalize\) needs ToTensor before it"),
        ([step("ToTensor"), step("ToTensor")], "ToTensor more than once"),
    ],
)
def test_bad_spec_is_refused_with_the_step_named(spec, message):
    with pytest.raises(TransformError, match=message):
        T.build_pipeline(spec)


def test_presets_validate_and_give_224_tensors():
    for name, spec in T.PRESETS.items():
        out = T.build_pipeline(spec)(make_sample(300, 400))
        assert out["image"].shape == (3, 224, 224) and out["mask"].shape == (1, 224, 224), name


def test_finalize_spec_gives_fixed_size_tensors_normalised_for_the_model():
    spec = T.finalize_spec(T.PRESETS["notebook_train"], 96, (0.5,) * 3, (0.5,) * 3)
    assert [s["name"] for s in spec[-3:]] == ["Rescale", "ToTensor", "Normalize"]
    assert spec[-1]["params"] == {"mean": [0.5] * 3, "std": [0.5] * 3}  # the model's, not ImageNet's
    for seed in range(3):
        torch.manual_seed(seed)
        out = T.build_pipeline(spec)(make_sample())
        assert out["image"].shape == (3, 96, 96) and out["image"].dtype == torch.float32
        assert out["image"].min() >= -1 and out["image"].max() <= 1


def test_finalize_spec_adds_no_resize_when_the_steps_already_end_at_the_size():
    spec = T.finalize_spec(T.PRESETS["eval"], 224, T.IMAGENET_MEAN, T.IMAGENET_STD)
    assert [s["name"] for s in spec] == ["Rescale", "CenterCrop", "ToTensor", "Normalize"]
    assert T.finalize_spec([], 32, T.IMAGENET_MEAN, T.IMAGENET_STD)[0]["params"] == {"size": [32, 32]}


def test_spec_files_round_trip_and_bad_files_are_explained(tmp_path):
    path = T.dump_spec(T.PRESETS["notebook_train"], tmp_path / "p.json")
    assert T.load_spec(path) == T.validate_spec(T.PRESETS["notebook_train"])
    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "RandomCrop",\n "params": {"size": 224,}}]')
    with pytest.raises(TransformError, match=r"not valid JSON \(line 2"):
        T.load_spec(bad)
    with pytest.raises(TransformError, match="cannot read pipeline file"):
        T.load_spec(tmp_path / "missing.json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([step("Rescale", size=0)]))
    with pytest.raises(TransformError, match=r"wrong.json: step 1 \(Rescale\): parameter 'size'"):
        T.load_spec(wrong)


# --------------------------------------------------------------------------- UI helpers


def test_mask_outline_is_the_inner_border_of_the_lesion():
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 1
    outline = T.mask_outline(mask)
    expected = mask.astype(bool)
    expected[3:5, 3:5] = False
    np.testing.assert_array_equal(outline, expected)


def test_overlay_draws_outline_or_fill_and_keeps_the_image_elsewhere():
    sample = make_sample(20, 20)
    image, mask = sample["image"], sample["mask"]
    outlined = T.overlay(image, mask, "outline", colour=(255, 0, 255))
    assert (outlined[T.mask_outline(mask)] == (255, 0, 255)).all()
    np.testing.assert_array_equal(outlined[mask == 0], image[mask == 0])
    filled = T.overlay(image, mask, "overlay", colour=(255, 0, 0), alpha=0.5)
    edge = T.mask_outline(mask)
    assert (filled[(mask == 1) & ~edge] == (128, 128, 0)).all()  # translucent: half green, half red
    assert (filled[edge] == (255, 0, 0)).all()  # edged by the outline
    np.testing.assert_array_equal(filled[mask == 0], image[mask == 0])
    np.testing.assert_array_equal(T.overlay(image, None), image)
    with pytest.raises(ValueError):
        T.overlay(image, mask, "sparkles")


def test_denormalize_undoes_to_tensor_and_normalize():
    sample = make_sample(24, 32)
    out = T.build_pipeline([step("ToTensor"), step("Normalize", mean=[0.5] * 3, std=[0.25] * 3)])(sample)
    np.testing.assert_array_equal(T.denormalize(out["image"], [0.5] * 3, [0.25] * 3), sample["image"])


def test_batch_grid_lays_out_a_batch_like_make_grid():
    spec = T.finalize_spec(T.PRESETS["default_train"], 32, T.IMAGENET_MEAN, T.IMAGENET_STD)
    samples = [T.build_pipeline(spec)(make_sample(seed=i)) for i in range(3)]
    grid = T.batch_grid(samples, T.IMAGENET_MEAN, T.IMAGENET_STD, nrow=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 34 + 2, 2 * 34 + 2, 3)
    np.testing.assert_array_equal(grid[2:34, 2:34], T.denormalize(samples[0]["image"], T.IMAGENET_MEAN, T.IMAGENET_STD))
    stacked = T.batch_grid(torch.stack([s["image"] for s in samples]), T.IMAGENET_MEAN, T.IMAGENET_STD, nrow=2)
    np.testing.assert_array_equal(stacked, grid)
    with pytest.raises(TransformError, match="one size"):
        T.batch_grid([make_sample(10, 10), make_sample(12, 10)])


@pytest.mark.parametrize("name", T.PRESET_NAMES)
@pytest.mark.parametrize("size", [64, 128, 224])
def test_presets_end_at_the_requested_size_without_a_second_resize(name, size):
    spec = T.preset(name, size)
    steps = T.image_steps(spec)
    finalized = T.finalize_spec(spec, size, (0.5,) * 3, (0.5,) * 3)
    assert [s["name"] for s in finalized] == [s["name"] for s in steps] + ["ToTensor", "Normalize"]
    rgb = np.zeros((150, 200, 3), np.uint8)
    mask = np.zeros((150, 200), np.uint8)
    mask[40:110, 60:150] = 1
    torch.manual_seed(0)
    out = T.build_pipeline(finalized)({"image": rgb, "mask": mask, "label": 0, "id": "x"})
    assert tuple(out["image"].shape) == (3, size, size)


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(TransformError, match="default_train"):
        T.preset("fancy")


# --------------------------------------------------------------------------- large images (fast paths)


def test_shrinking_a_large_image_by_more_than_4x_keeps_the_mask_aligned():
    sample = make_sample(h=960, w=1280)
    out, params = T.build_pipeline([step("Rescale", size=80)]).apply_with_params(sample)
    assert out["image"].shape == (80, 106, 3) and params[0]["size"] == [80, 106]
    assert set(np.unique(out["mask"])) == {0, 1}
    assert misalignment(out["image"], out["mask"]) == 0


def test_a_rotation_before_a_rescale_shrinks_first_and_stays_aligned():
    sample = make_sample(h=900, w=1200)
    pipeline = T.build_pipeline([step("RandomRotation", degrees=180, expand=True, crop_to_lesion=True),
                                 step("RandomHorizontalFlip", p=0.5), step("Rescale", size=64)])
    for seed in range(6):
        torch.manual_seed(seed)
        out, params = pipeline.apply_with_params(sample)
        assert params[0]["prescale"] < 0.75  # the rotation ran on a shrunk image
        assert min(out["image"].shape[:2]) == 64 and set(np.unique(out["mask"])) == {0, 1}
        assert misalignment(out["image"], out["mask"], tol=2) == 0, seed


def test_a_rotation_without_a_later_rescale_never_shrinks():
    sample = make_sample(h=900, w=1200)
    pipeline = T.build_pipeline([step("RandomRotation", degrees=180, expand=True, crop_to_lesion=True),
                                 step("RandomCrop", size=64)])
    torch.manual_seed(0)
    _, params = pipeline.apply_with_params(sample)
    assert "prescale" not in params[0]
