"""How sure a single prediction is, said without overstating it."""

from __future__ import annotations

from pathlib import Path

from lesion_core import runs
from lesion_core.i18n import N_

# Below this top-class probability a prediction is labelled "uncertain". With three classes
# a guess is 0.33; 0.6 asks for a clear majority before a class is named without a caveat.
UNCERTAIN_BELOW = 0.6

DISCLAIMER = "Research tool, not a diagnosis: never use it to decide on a patient's care."


def describe(probs: dict[str, float]) -> dict:
    """{"ranked": [(class, probability)] highest first, "top": class, "top_p": float,
    "uncertain": bool, "headline": one sentence that says how sure the model is}."""
    ranked = sorted(probs.items(), key=lambda item: item[1], reverse=True)
    top, top_p = ranked[0]
    uncertain = top_p < UNCERTAIN_BELOW
    if uncertain and len(ranked) > 1:
        headline = N_("Uncertain. Most likely: {name}, at only {p}; next {other} {q} (a prediction below {limit} is "
                      "labelled uncertain)").format(name=top, p=f"{top_p:.0%}", other=ranked[1][0],
                                                     q=f"{ranked[1][1]:.0%}", limit=f"{UNCERTAIN_BELOW:.0%}")
    elif uncertain:
        headline = N_("Uncertain. Most likely: {name}, at only {p} (a prediction below {limit} is labelled "
                      "uncertain)").format(name=top, p=f"{top_p:.0%}", limit=f"{UNCERTAIN_BELOW:.0%}")
    else:
        headline = N_("Most likely: {name} ({p})").format(name=top, p=f"{top_p:.0%}")
    return {"ranked": ranked, "top": top, "top_p": top_p, "uncertain": uncertain, "headline": headline}


def validation_summary(run_dir) -> str | None:
    """The run's own validation performance in one line, or None before it has any."""
    result = runs.read_metrics(Path(run_dir), "val")
    if not result:
        return None
    auc = result.get("mean_auc")
    auc_text = "n/a" if auc is None else f"{auc:.3f}"
    return N_("This run on its {n} validation images: mean AUC {auc}, accuracy {accuracy}").format(
        n=result.get("n", "?"), auc=auc_text, accuracy=f"{result.get('accuracy', float('nan')):.1%}")
