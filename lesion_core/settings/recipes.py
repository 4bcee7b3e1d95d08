"""Recipes: named starting points for a run's settings, and how long a run will take.

A recipe is a set of overrides of settings.default_config(): a config naming one ("recipe":
"standard") starts from it, and its own settings go on top (settings.validate_config). The
command line (`train` without --recipe) and the Train page name the one recipe_for() picks for
the data; config.json keeps the name and every value, so a run resumes as it began.

  quick     the demo and the app's first Launch: EfficientNet-Lite0 at 96 px, 3 epochs; under
            a minute for the 300 demo images on a 2-core CPU.
  standard  the default for real data, measured by 5-fold cross-validation on the 2,000 ISIC
            2017 training images (bench/quality.py; figures and the levers tried in the
            README): the best recipe found that trains 2,000 images at 256 px within 30
            minutes on a 2-core CPU with bf16 autocast; where the data has the patients' age,
            sex or site, those are weighed in too (evaluation.patient).
"""

from __future__ import annotations

RECIPES: dict[str, dict] = {
    "quick": {"image_size": 96, "epochs": 3},
    "standard": {
        "epochs": 8,
        "scheduler": {"name": "cosine", "warmup_epochs": 1},
        "optim": {"label_smoothing": 0.1},
        "tta": True,
        "metadata": True,
    },
}


def recipe_for(root) -> str:
    """The recipe a run on this data starts from: quick for the built-in demo, else standard."""
    return "quick" if root in (None, "demo") else "standard"
