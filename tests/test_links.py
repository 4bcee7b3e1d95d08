"""The app's choices in the URL: what encode writes, decode reads back; hostile values are named."""

from __future__ import annotations

import pytest

from lesion_core import links, transforms


def test_choices_survive_a_round_trip():
    pipeline = transforms.image_steps(transforms.PRESETS["notebook_train"])
    model = {"name": "lenet", "weights": "random", "weights_path": None, "freeze_backbone": False}
    params = links.encode({"source": "folder", "root": "/data/isic"}, model, pipeline, "20261128-run-ab12")
    choices, problems = links.decode(params)
    assert problems == []
    assert choices == {"data": {"source": "folder", "root": "/data/isic"}, "model": model,
                       "pipeline": pipeline, "run": "20261128-run-ab12"}
    assert links.decode(links.encode({"source": "demo", "root": ""}))[0] == {"data": {"source": "demo", "root": ""}}


@pytest.mark.parametrize("key, value, message", [
    ("data", "folder:relative/path", "expected demo, folder:/path"),
    ("data", "ftp:/x", "expected demo, folder:/path"),
    ("model", '{"name": "lenet", "weights": "torchvision"}', "not available for lenet"),
    ("model", '{"name": "lenet", "weights": "file", "weights_path": "x.pt"}', "absolute weights_path"),
    ("model", '["lenet"]', "unknown model"),
    ("model", "{not json", "Expecting property name"),
    ("pipeline", '[{"name": "Explode", "params": {}}]', "Explode"),
    ("pipeline", '{"a": 1}', ""),
    ("run", "../../etc", "not a run id"),
    ("run", "a/b", "not a run id"),
])
def test_a_bad_value_is_dropped_and_named(key, value, message):
    choices, problems = links.decode({key: value, "data": "demo"} if key != "data" else {key: value})
    assert key not in choices
    assert len(problems) == 1 and problems[0].startswith(f"the link's {key} setting was ignored") and message in problems[0]
