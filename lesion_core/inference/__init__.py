"""Scoring: a run plus images in, probabilities out, raw and calibrated, the way the run itself
scored its images (its evaluation pipeline, TTA setting, metadata prior and temperature).

Every view and command scores through here; fitting what is applied here (the temperature,
the metadata prior, the decision rule) belongs to lesion_core.evaluation, which this package
never imports.
"""

from lesion_core.inference.model import forward, inference_settings, load_run_model
from lesion_core.inference.predictions import read_predictions, write_predictions
from lesion_core.inference.score import evaluate_run, predict_image, predict_loader

__all__ = ["evaluate_run", "forward", "inference_settings", "load_run_model", "predict_image", "predict_loader",
           "read_predictions", "write_predictions"]
