"""The Train form's unsaved settings, kept across a reload: a draft, <runs folder>/train_draft.json.

The page writes the form's values here when the user changes one, and fills the form from it
when a new browser session opens the page (before the running run's settings and the recipe).
The draft is a partial config checked by the same schema as a run's (schema.check_partial),
when written and when read: a damaged one is named and ignored, never breaks the page.
"""

from __future__ import annotations

import copy
from pathlib import Path

from lesion_core import runs, transforms
from lesion_core.errors import LesionLabError
from lesion_core.i18n import N_
from lesion_core.settings.fields import SCHEMA_VERSION
from lesion_core.settings.schema import check_partial

DRAFT_FILE = "train_draft.json"
# The settings the Train form sets (the data folder, its classes and the model are chosen on
# their own pages, which keep them).
FORM = {"data": ("max_size",),
        "optim": ("optimizer", "lr", "momentum", "weight_decay", "label_smoothing"),
        "scheduler": ("name", "step_size", "gamma", "warmup_epochs"),
        None: ("recipe", "epochs", "batch_size", "image_size", "seed", "class_weights", "device", "processes",
               "tta", "metadata", "augment")}


def draft_path(runs_dir) -> Path:
    return Path(runs_dir) / DRAFT_FILE


def from_form(config: dict, augment: str | None) -> dict:
    """The draft of a form's config: the settings the form sets; augment is the preset's name,
    None for the Augmentations page's pipeline (that page keeps it)."""
    draft: dict = {"version": SCHEMA_VERSION}
    for section, keys in FORM.items():
        source = config.get(section, {}) if section else config
        values = {key: copy.deepcopy(source[key]) for key in keys if key in source}
        if section:
            draft[section] = values
        else:
            draft.update(values)
    draft.pop("augment", None)
    if augment is not None:
        draft["augment"] = augment
    return draft


def read_draft(runs_dir) -> tuple[dict | None, str | None]:
    """(the saved draft, None), (None, None) when there is none, (None, why it was ignored)."""
    path = draft_path(runs_dir)
    value, problem = runs.load_json(path)
    if value is None and problem is None:
        return None, None
    try:
        if problem:
            raise LesionLabError(problem)
        check_partial(value)
        unknown = set(value) - set(FORM[None]) - {"version", "data", "optim", "scheduler"}
        if unknown or set(value.get("data", {})) - set(FORM["data"]):
            raise LesionLabError(N_("{file}: not settings of the Train form").format(file=DRAFT_FILE))
        if "augment" in value and not (isinstance(value["augment"], str)  # the form offers presets
                                       and value["augment"] in transforms.PRESETS):
            raise LesionLabError(N_("unknown augmentation preset {name}").format(name=repr(value["augment"])))
    except LesionLabError as exc:
        return None, N_("The form's saved settings were ignored ({error}); it starts from the recipe.").format(
            error=exc)
    return value, None


def write_draft(runs_dir, draft: dict) -> bool:
    """Save the form's draft; False (nothing written) when the schema refuses a value of it:
    Launch names that value, and the next visit must not start from it."""
    try:
        check_partial(draft)
    except LesionLabError:
        return False
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    runs.atomic_write_json(draft_path(runs_dir), draft)
    return True


def discard_draft(runs_dir) -> None:
    """Forget the saved form ("Reset to recipe")."""
    draft_path(runs_dir).unlink(missing_ok=True)
