"""Export: every zoo model to ONNX and TorchScript, preprocessing inside, checked on real images."""

from __future__ import annotations

import json
import numpy as np
import pytest
import torch

from lesion_core import data, export, inference, models, runs
from lesion_core.cli import main
from lesion_core.errors import ModelError
from lesion_core import settings

# The ONNX exporter (torch.export, then onnxscript) takes 10-60 s per zoo net on 2 cores: the
# quick run covers the notebook's LeNet in both formats and the default model in TorchScript.
QUICK = {("lenet", "onnx"), ("lenet", "torchscript"), ("efficientnet_lite0", "torchscript")}


def make_run(root, runs_dir, model_name: str, size: int, seed: int = 0):
    """A finished-looking run folder: config.json of the data and a best.pt whose head is
    rescaled so its logits spread by about 2 (random heads give near-uniform probabilities,
    scaled too far they saturate at 0 and 1: either way a wrong export would not show)."""
    class_names = list(data.load_dataset(root).class_names)
    config = settings.validate_config({
        "data": {"root": str(root), "class_names": class_names},
        "model": {"name": model_name, "weights": "random"},
        "image_size": size, "device": "cpu",
    })
    run_dir = runs.create_run(runs_dir, config)
    torch.manual_seed(seed)
    model = models.build_model(model_name, len(class_names), weights="random").eval()
    head = model.get_submodule(models.MODELS[model_name].head)
    with torch.no_grad():
        spread = model(torch.randn(8, 3, size, size)).std()
        head.weight.mul_(2 / spread)
        head.bias.mul_(2 / spread)
    torch.save({"model": model.state_dict()}, run_dir / "best.pt")
    return run_dir


# One model per family of layers: Lite1 and Lite2 are Lite0's blocks, wider and deeper;
# ResNet-50's bottlenecks and MobileNetV3-Large's blocks are made of the same operators as
# ResNet-18's and MobileNetV3-Small's; VGG-16 is AlexNet's convolutions, ReLUs, max pools,
# adaptive average pool, dropout and linear layers, more of them. An export that works for one works for its kin, and
# each ONNX export costs 10-20 s on 2 cores.
SAME_LAYERS_AS = {"efficientnet_lite1": "efficientnet_lite0", "efficientnet_lite2": "efficientnet_lite0",
                  "resnet50": "resnet18", "mobilenet_v3_large": "mobilenet_v3_small", "vgg16": "alexnet"}


def zoo_params():
    for fmt in export.FORMATS:
        for name in (name for name in models.MODELS if name not in SAME_LAYERS_AS):
            marks = [] if (name, fmt) in QUICK else [pytest.mark.slow]
            yield pytest.param(name, fmt, marks=marks, id=f"{fmt}-{name}")


def test_every_model_left_out_of_the_zoo_export_has_its_kin_exported():
    exported = {name for name in models.MODELS if name not in SAME_LAYERS_AS}
    assert set(SAME_LAYERS_AS) <= set(models.MODELS)
    assert set(SAME_LAYERS_AS.values()) <= exported


@pytest.mark.parametrize(("model_name", "fmt"), list(zoo_params()))
def test_every_zoo_model_exports_and_matches_pytorch(model_name, fmt, demo_root, tmp_path, one_torch_thread):
    size = max(64, models.MODELS[model_name].min_input_size)
    run_dir = make_run(demo_root, tmp_path / "runs", model_name, size)
    out = tmp_path / f"model{export.SUFFIXES[fmt]}"
    sidecar = export.export_run(run_dir, fmt, out)
    assert out.is_file()
    assert sidecar["verification"]["images"] >= 4
    assert sidecar["verification"]["max_abs_diff"] <= export.TOLERANCE
    assert json.loads(export.sidecar_path(out).read_text()) == sidecar


@pytest.fixture
def lenet_run(demo_root, tmp_path):
    return make_run(demo_root, tmp_path / "runs", "lenet", 64)


def onnx_probs(path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": batch})[0]


def test_cli_exports_and_the_file_agrees_with_the_lab_prediction(lenet_run, demo_root, tmp_path, capsys):
    out = tmp_path / "lenet.onnx"
    assert main(["export", str(lenet_run), "--format", "onnx", "--out", str(out)]) == 0
    assert "max |exported - PyTorch| probability" in capsys.readouterr().out
    # without --out the file goes into the run's folder, not wherever the command was typed
    assert main(["export", str(lenet_run), "--format", "torchscript"]) == 0
    assert f"wrote {lenet_run / 'model.pt'} and " in capsys.readouterr().out
    assert (lenet_run / "model.pt").is_file() and export.sidecar_path(lenet_run / "model.pt").is_file()
    sidecar = json.loads(export.sidecar_path(out).read_text())
    assert sidecar["class_names"] == ["nevus", "melanoma", "seborrheic keratosis"]
    assert sidecar["input_size"] == 64 and sidecar["input"]["dtype"] == "uint8"
    # An image of another size and shape than the check used, through the lab's own predict.
    image = data.read_image(sorted((demo_root / "images").iterdir())[0])
    image = np.ascontiguousarray(image[5:, :77])
    got = onnx_probs(out, image[None])[0]
    lab = inference.predict_image(lenet_run, image)
    expected = np.array([lab[name] for name in sidecar["class_names"]])
    assert got.sum() == pytest.approx(1, abs=1e-5)
    # The lab resizes uint8 pixels (rounded) and may use bf16; the graph resizes floats.
    np.testing.assert_allclose(got, expected, atol=0.03)
    assert got.argmax() == expected.argmax()


def test_a_batch_of_several_images_gives_one_row_each(lenet_run, demo_root, tmp_path):
    out = tmp_path / "m.pt"
    export.export_run(lenet_run, "torchscript", out)
    batch = np.stack([data.read_image(p) for p in sorted((demo_root / "images").iterdir())[:3]])
    loaded = torch.jit.load(str(out))
    with torch.no_grad():
        probs = loaded(torch.from_numpy(batch)).numpy()
        one = loaded(torch.from_numpy(batch[1:2])).numpy()
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs[1:2], one, atol=1e-6)


def test_calibration_temperature_and_threshold_go_into_graph_and_sidecar(lenet_run, tmp_path):
    plain = tmp_path / "plain.onnx"
    export.export_run(lenet_run, "onnx", plain)
    runs.atomic_write_json(lenet_run / "calibration.json", {"temperature": 2.0, "fitted_on": "val"})
    runs.atomic_write_json(lenet_run / "threshold.json", {"class": "melanoma", "threshold": 0.3, "calibrated": True})
    calibrated = tmp_path / "calibrated.onnx"
    sidecar = export.export_run(lenet_run, "onnx", calibrated)
    assert sidecar["temperature"] == 2.0
    assert sidecar["threshold"] == {"class": "melanoma", "threshold": 0.3, "calibrated": True}
    batch = np.stack([np.full((48, 64, 3), v, np.uint8) for v in (30, 200)])
    p1, p2 = onnx_probs(plain, batch), onnx_probs(calibrated, batch)
    # log p equals the logits up to a per-row constant, so softmax(log p1 / 2) is the calibrated output.
    expected = torch.softmax(torch.log(torch.from_numpy(p1)) / 2, dim=1).numpy()
    np.testing.assert_allclose(p2, expected, atol=1e-5)
    assert not np.allclose(p1, p2, atol=1e-3)


@pytest.mark.parametrize("content", ['{"temperature": -1}', '{"temperature": "2"}', "not json", '[2.0]'])
def test_an_unusable_calibration_file_changes_nothing(lenet_run, content):
    (lenet_run / "calibration.json").write_text(content)
    (lenet_run / "threshold.json").write_text('{"class": "unknown", "threshold": 0.5}')
    _, sidecar = export.build_exportable(lenet_run)
    assert sidecar["temperature"] is None and sidecar["threshold"] is None


def test_verification_fails_loudly_when_the_file_differs_from_pytorch(lenet_run, tmp_path, demo_root):
    out = tmp_path / "m.onnx"
    export.export_run(lenet_run, "onnx", out)
    wrapper, _ = export.build_exportable(lenet_run)
    wrapper.temperature = 3.0  # PyTorch now computes something else than the file does
    images = export.verification_images(lenet_run)
    with pytest.raises(ModelError, match="disagrees with PyTorch"):
        export.verify(wrapper, "onnx", out, images)


def test_an_eval_pipeline_that_cannot_be_exported_is_refused_and_nothing_is_written(demo_root, tmp_path):
    run_dir = make_run(demo_root, tmp_path / "runs", "lenet", 64)
    config = runs.read_config(run_dir)
    # a crop to the lesion after a resize: the graph crops first (export_crop), so this one cannot be exported
    config["eval_augment"] = [{"name": "Rescale", "params": {"size": 80}}, {"name": "CropByMask", "params": {"border": 10}}]
    runs.atomic_write_json(run_dir / "config.json", config)
    assert "crops to the lesion after other steps" in export.export_problem(config)
    out = tmp_path / "m.onnx"
    with pytest.raises(ModelError, match="crops to the lesion after other steps"):
        export.export_run(run_dir, "onnx", out)
    assert list(tmp_path.glob("*m.onnx*")) == []


def test_a_lesion_crop_run_is_checked_on_the_images_and_masks_given(demo_root, tmp_path, capsys):
    run_dir = make_run(demo_root, tmp_path / "runs", "lenet", 32)
    config = runs.read_config(run_dir)
    config["eval_augment"] = [{"name": "CropByMask", "params": {"border": 4}}, {"name": "Rescale", "params": {"size": 40}},
                              {"name": "CenterCrop", "params": {"size": 32}}]
    runs.atomic_write_json(run_dir / "config.json", config)
    images = sorted((demo_root / "images").iterdir())[:3]
    masks = [demo_root / "masks" / f"{p.stem}.png" for p in images]
    out = tmp_path / "crop.pt"
    args = ["export", str(run_dir), "--format", "torchscript", "--out", str(out), "--images", *map(str, images)]
    assert main(args) == 2  # a crop to the lesion needs the masks to be checked on
    assert "give one mask per image (--masks)" in capsys.readouterr().err and not out.exists()
    assert main(args + ["--masks", *map(str, masks)]) == 0
    sidecar = json.loads(export.sidecar_path(out).read_text())
    assert sidecar["verification"]["images"] == 3 and [i["name"] for i in sidecar["inputs"]] == ["image", "mask"]
    loaded = torch.jit.load(str(out))
    image = data.read_image(images[0])
    mask = data.read_mask(masks[0], image.shape[:2])
    with torch.no_grad():
        got = loaded(torch.from_numpy(image)[None], torch.from_numpy(mask)[None])[0].numpy()
    expected = inference.predict_image(run_dir, image, mask)
    np.testing.assert_allclose(got, [expected[n] for n in sidecar["class_names"]], atol=1e-4)


def test_a_run_without_weights_says_so(demo_root, tmp_path, capsys):
    run_dir = make_run(demo_root, tmp_path / "runs", "lenet", 64)
    (run_dir / "best.pt").unlink()
    assert main(["export", str(run_dir), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "no best.pt" in capsys.readouterr().err


def test_the_readme_onnxruntime_snippet_runs(lenet_run, demo_root, tmp_path, monkeypatch, capsys):
    from tests.e2e_helpers import REPO

    readme = (REPO / "README.md").read_text()
    snippet = next(block.split("```", 1)[0] for block in readme.split("```python\n")[1:] if "onnxruntime" in block)
    assert len(snippet.strip().splitlines()) <= 6  # "five lines" of use, plus the imports
    (tmp_path / "runs" / "RUN-ID").mkdir(parents=True)  # where `export runs/RUN-ID` writes it
    export.export_run(lenet_run, "onnx", tmp_path / "runs" / "RUN-ID" / "model.onnx")
    (tmp_path / "lesion.jpg").write_bytes(sorted((demo_root / "images").iterdir())[0].read_bytes())
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "'melanoma'" in printed and "'nevus'" in printed


@pytest.mark.slow
@pytest.mark.parametrize("fmt", export.FORMATS)
def test_export_matches_pytorch_on_real_isic_images(isic_dev_root, tmp_path, fmt, one_torch_thread):
    run_dir = make_run(isic_dev_root, tmp_path / "runs", "efficientnet_lite0", 96)
    sidecar = export.export_run(run_dir, fmt, tmp_path / f"lite0{export.SUFFIXES[fmt]}")
    assert sidecar["verification"]["images"] == export.VERIFY_IMAGES
    assert sidecar["verification"]["max_abs_diff"] <= export.TOLERANCE


def test_exported_files_are_never_committed():
    import shutil
    import subprocess

    from tests.e2e_helpers import REPO

    if not shutil.which("git") or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for name in ("model.onnx", "model.onnx.json", "runs/x/model.pt"):
        assert subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO).returncode == 0, name
