"""Test-time augmentation: the 8 dihedral views and the mean of their softmax."""

from __future__ import annotations

import numpy as np
import torch

from lesion_core.inference import tta


def test_the_views_are_the_eight_distinct_flips_and_rotations():
    image = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    views = tta.dihedral_views(image)
    assert len(views) == 8
    as_numpy = image.numpy()
    expected = [np.rot90(as_numpy, k, axes=(2, 3)) for k in range(4)]
    expected += [np.rot90(np.flip(as_numpy, 3), k, axes=(2, 3)) for k in range(4)]
    for view, reference in zip(views, expected):
        np.testing.assert_array_equal(view.numpy(), reference)
    assert len({v.numpy().tobytes() for v in views}) == 8


def test_mean_softmax_equals_the_mean_over_views_one_by_one():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3)).eval()
    images = torch.rand(5, 3, 8, 8)
    with torch.no_grad():
        got = tta.mean_softmax(model, images)
        one_by_one = torch.stack([torch.softmax(model(v), 1) for v in tta.dihedral_views(images)]).mean(0)
    torch.testing.assert_close(got, one_by_one)
    torch.testing.assert_close(got.sum(1), torch.ones(5))
