"""The app's choices as URL query parameters, so a reload or a copied link keeps them.

A browser session's dataset, augmentation pipeline, model choice and followed run live in
Streamlit's session state, which a reload throws away. The pages write them into the URL
(encode) and a new session reads them back (decode). A URL is typed or pasted by anyone:
decode treats every value as untrusted, keeps what is valid and names what it dropped.

    ?data=demo | folder:/abs/path | upload:<name-hash>/<inner folder> (under paths.uploads_dir())
    &model={"name": ..., "weights": ..., "weights_path": ..., "freeze_backbone": ...}
    &pipeline=[{"name": ..., "params": {...}}, ...]
    &run=<run id>
"""

from __future__ import annotations

import json

from lesion_core import models, paths, transforms
from lesion_core.errors import LesionLabError
from lesion_core.i18n import N_

KEYS = ("data", "model", "pipeline", "run")
DATA_SOURCES = ("folder", "upload")
WEIGHTS = ("default", "random", "offline", "torchvision", "file")


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def encode(dataset: dict | None = None, model: dict | None = None, pipeline: list | None = None,
           run: str | None = None) -> dict[str, str]:
    """Query parameters for the given choices (those given as None are left out)."""
    params = {}
    if dataset is not None:
        root = dataset["root"]
        if dataset["source"] == "upload":  # the server's cache path stays out of the address bar
            root = paths.upload_relative(root) or root
        params["data"] = "demo" if dataset["source"] == "demo" else f"{dataset['source']}:{root}"
    if model is not None:
        params["model"] = _compact(model)
    if pipeline is not None:
        params["pipeline"] = _compact(pipeline)
    if run:
        params["run"] = run
    return params


def _dataset(text: str) -> dict:
    if text == "demo":
        return {"source": "demo", "root": ""}
    source, _, root = text.partition(":")
    if source == "upload" and root and not root.startswith("/"):
        parts = root.split("/")
        if any(part in ("", ".", "..") for part in parts) or "\\" in root or "\0" in root:
            raise ValueError(N_("expected demo, folder:/path or upload:name"))
        root = str(paths.uploads_dir().joinpath(*parts))
    if source not in DATA_SOURCES or not root.startswith("/"):
        raise ValueError(N_("expected demo, folder:/path or upload:name"))
    return {"source": source, "root": root}


def _model(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict) or value.get("name") not in models.MODELS:
        raise ValueError(N_("unknown model; known: {names}").format(names=", ".join(models.MODELS)))
    weights = value.get("weights", "default")
    path = value.get("weights_path")
    if weights not in WEIGHTS or (weights != "default" and weights != "file"
                                  and weights not in models.MODELS[value["name"]].weight_sources):
        raise ValueError(N_("weights {weights} are not available for {model}").format(weights=repr(weights), model=value["name"]))
    if weights == "file" and not (isinstance(path, str) and path.startswith("/")):
        raise ValueError(N_("weights 'file' needs an absolute weights_path"))
    if not isinstance(value.get("freeze_backbone", False), bool):
        raise ValueError(N_("freeze_backbone must be true or false"))
    return {"name": value["name"], "weights": weights, "weights_path": path if weights == "file" else None,
            "freeze_backbone": value.get("freeze_backbone", False)}


def _pipeline(text: str) -> list:
    try:
        return transforms.image_steps(json.loads(text))
    except LesionLabError as exc:
        raise ValueError(str(exc)) from None


def _run(text: str) -> str:
    if not text or text.startswith(".") or any(c in text for c in "/\\\0"):
        raise ValueError(N_("not a run id"))
    return text


_DECODERS = {"data": _dataset, "model": _model, "pipeline": _pipeline, "run": _run}


def decode(params) -> tuple[dict, list[str]]:
    """(choices, problems) from query parameters (a mapping of str to str).

    choices holds the valid ones under KEYS; problems says, per dropped parameter, what was
    wrong with it, for the page to show. Unknown parameters are ignored (not ours).
    """
    choices, problems = {}, []
    for key in KEYS:
        text = params.get(key)
        if text is None:
            continue
        try:
            choices[key] = _DECODERS[key](str(text))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            problems.append(N_("the link's {key} setting was ignored: {error}").format(key=key, error=exc))
    return choices, problems
