"""Scoring: a run plus images in, probabilities out, raw and calibrated, the way the run itself
scored its images (its evaluation pipeline, TTA setting, metadata prior and temperature).

Every view and command scores through here; fitting what is applied here (the temperature,
the metadata prior, the decision rule) belongs to lesion_core.evaluation, which this package
never imports.

    model        a run's best weights, the forward pass, the precision it was evaluated with
    score        predict_image, evaluate_run, score_records, predict_loader, softmax_batch
    tta          the 8 flips/90-degree rotations
    prior        applying the patient-metadata prior (patient_model.json)
    temperature  applying the calibration temperature; the one reader of calibration.json
    decision     the one reader of threshold.json, the decision and the fitness gate
"""

from lesion_core.inference.model import forward, inference_settings, load_run_model
from lesion_core.inference.predictions import read_predictions, write_predictions
from lesion_core.inference.score import evaluate_run, predict_image, predict_loader

__all__ = ["evaluate_run", "forward", "inference_settings", "load_run_model", "predict_image", "predict_loader",
           "read_predictions", "write_predictions"]
