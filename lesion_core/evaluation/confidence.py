"""How sure a single prediction is, said without overstating it."""

from __future__ import annotations

from pathlib import Path

from lesion_core import runs

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
    if uncertain:
        runner_up = f"; next {ranked[1][0]} {ranked[1][1]:.0%}" if len(ranked) > 1 else ""
        headline = (f"Uncertain. Most likely: {top}, at only {top_p:.0%}{runner_up} "
                    f"(a prediction below {UNCERTAIN_BELOW:.0%} is labelled uncertain)")
    else:
        headline = f"Most likely: {top} ({top_p:.0%})"
    return {"ranked": ranked, "top": top, "top_p": top_p, "uncertain": uncertain, "headline": headline}


def validation_summary(run_dir) -> str | None:
    """The run's own validation performance in one line, or None before it has any."""
    result = runs.read_metrics(Path(run_dir), "val")
    if not result:
        return None
    auc = result.get("mean_auc")
    auc_text = "n/a" if auc is None else f"{auc:.3f}"
    return (f"This run on its {result.get('n', '?')} validation images: mean AUC {auc_text}, "
            f"accuracy {result.get('accuracy', float('nan')):.1%}")
