"""Score a run that stopped before its end: the files a finished run writes, from its best.pt."""

from __future__ import annotations

from pathlib import Path

from lesion_core import inference, metrics, runs
from lesion_core.errors import TrainingError
from lesion_core.evaluation import bootstrap, review
from lesion_core.inference.score import score_records
from lesion_core.i18n import N_
from lesion_core import settings


def can_evaluate(run) -> bool:
    """Whether a run (runs.RunInfo) has best weights, is not running, and has no test metrics yet."""
    return (run.state not in runs.ACTIVE_STATES and (Path(run.path) / "best.pt").is_file()
            and runs.read_metrics(run.path, "test") is None)


def evaluate_best(run_dir) -> dict:
    """The best weights on the run's recorded val and test splits: predictions_<split>.csv and
    metrics_<split>.json as a finished run has them; returns {split: {mean_auc, accuracy, n}}."""
    run_dir = Path(run_dir)
    info = runs.run_info(run_dir)
    if info.state in runs.ACTIVE_STATES:
        raise TrainingError(N_("run {run} is still {state}: it evaluates itself when it finishes").format(
            run=info.id, state=info.state))
    model, config = inference.load_run_model(run_dir)
    lesion = settings.load_data(config)
    summary = {}
    for split in ("val", "test"):
        records = lesion.split(split)
        if not records:
            continue
        ids, labels, probs = score_records(run_dir, records, model, config)
        # as a finished run writes them: calibration fitted on val, probabilities named, intervals
        result = metrics.compute_metrics(labels, probs, lesion.class_names)
        reviewed = review.split_review(run_dir, split, labels, probs, lesion.class_names)
        inference.write_predictions(run_dir / f"predictions_{split}.csv", ids, labels, probs, lesion.class_names,
                                temperature=reviewed["calibration"]["temperature"])
        runs.atomic_write_json(run_dir / f"metrics_{split}.json", metrics.metrics_summary(result, ids) | reviewed
                               | {"intervals": bootstrap.metric_intervals(labels, probs, lesion.class_names)})
        summary[split] = {"mean_auc": result["mean_auc"], "accuracy": result["accuracy"], "n": len(ids)}
    if not summary:
        raise TrainingError(N_("run {run} has neither val nor test images to evaluate on").format(run=info.id))
    return summary
