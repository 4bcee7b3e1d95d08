"""Names the command line offers in --help and checks in its arguments before any engine
module loads (they pull in torch, torchvision and scikit-learn: seconds on a busy 2-core
machine). Each mirrors the engine's own list, and tests/test_cli_start.py keeps them equal."""

PRESET_NAMES = ("notebook_train", "default_train", "eval")  # transforms.PRESET_NAMES
EXPLAIN_METHODS = ("gradcam", "gradcam++", "scorecam", "eigencam")  # evaluation.explain.METHODS
DEFAULT_EXPLAIN_METHOD = "gradcam"  # evaluation.explain.DEFAULT_METHOD
EXPORT_FORMATS = ("onnx", "torchscript")  # export.FORMATS
EXPORT_TOLERANCE = 1e-4  # export.TOLERANCE
