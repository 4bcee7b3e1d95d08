"""Run folders: the only place training state lives.

runs/<run-id>/ holds config.json, status.json, history.jsonl, best.pt, last.pt,
predictions_<split>.csv, metrics_<split>.json and train.log. Every file is written to a
temporary file in the same folder and renamed into place, so a reader (the UI, another
process) never sees half a file and a killed trainer never leaves a corrupt one.

    files      the one reader and writer of each run-folder file, with its checks
    lifecycle  a run's id, folder, state, logs, stop requests and progress line
    index      the runs as the UI lists them (parsed again only when a file changes)
"""

from lesion_core.paths import atomic_write_text  # run files are written through it too
from lesion_core.runs.files import (
    ACTIVE_STATES, DAMAGED, INTERRUPTED, MESSAGE_FIELDS, PATIENT_FILE, PATIENT_MAX_WEIGHT, STATES,
    STATUS_FIELDS, STOP_FILE, append_line, atomic_write_json, config_problems, load_json,
    metrics_problems, patient_model_problems, read_capped, read_config, read_history,
    read_history_checked, read_json, read_metrics, read_status, run_problems, status_problems,
    write_status,
)
from lesion_core.runs.lifecycle import (
    CONSOLE_LOG, PHASES, RUN_ID_TIME, clear_stop, create_run, effective_state, eta_range, log_tail,
    new_run_id, progress, request_stop, start_failure, stop_requested,
)
from lesion_core.runs.index import (
    RunInfo, active_run, best_from_history, dataset_label, forget_read_cache, is_active, list_runs, run_info, trained_on_demo,
)

__all__ = [
    "ACTIVE_STATES", "atomic_write_text", "CONSOLE_LOG", "DAMAGED", "INTERRUPTED", "MESSAGE_FIELDS", "PATIENT_FILE",
    "PATIENT_MAX_WEIGHT", "PHASES", "RUN_ID_TIME", "RunInfo", "STATES", "STATUS_FIELDS", "STOP_FILE",
    "active_run", "append_line", "atomic_write_json", "best_from_history", "clear_stop",
    "config_problems", "create_run", "dataset_label", "effective_state", "forget_read_cache", "eta_range", "is_active",
    "list_runs", "load_json", "log_tail", "metrics_problems", "new_run_id", "patient_model_problems",
    "progress", "read_capped", "read_config", "read_history", "read_history_checked", "read_json",
    "read_metrics", "read_status", "request_stop", "run_info", "run_problems", "start_failure",
    "status_problems", "stop_requested", "trained_on_demo", "write_status",
]
