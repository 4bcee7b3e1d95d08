"""What every page shares: durable session state, cached engine calls, error display.

The pages live in app_pages/, not pages/: Streamlit treats a folder named pages/ beside
app.py as old-style pages and, on a fresh server whose first request is a deep link (say
/train), runs that file without app.py (no sidebar, this module listed as a page). This
module is a plain helper the pages import (`from app_pages import common`), the only UI
module holding st.cache_* wrappers; the work itself lives in lesion_core.

Session state: widgets whose key starts with "keep_" keep their value when the user visits
another page (see keep_widget_state); durable non-widget values live under the DATASET,
PIPELINE and MODEL keys below.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import streamlit as st
import torch

from app_pages import auth, cache
from app_pages.lang import _, classes, cls, md, ngettext, num, rendered, setting
from lesion_core import access, data, metrics, paths, runs, settings
from lesion_core.errors import LesionLabError, describe_os_error
from lesion_core.i18n import N_
from lesion_core.evaluation import bootstrap
from lesion_core.settings import preview

DATASET = "dataset"  # {"source": "demo"|"folder"|"upload", "root": str}
PIPELINE = "pipeline"  # augmentation spec (list of steps) built on the Augmentations page
MODEL = "model"  # the Model page's choice, used by Train and the batch previews
FROM_AUGMENT = "from_augment"  # set by "Train with this pipeline": Train selects the page's pipeline
KEEP = "keep_"  # prefix of widget keys whose values survive page switches
# Env var naming a dataset folder to open at start instead of the demo (tests, servers).
DATA_ENV = "LESION_LAB_DATA"


def keep_widget_state() -> None:
    """Stop Streamlit deleting "keep_" widget values when their page is not shown.

    Streamlit drops the state of widgets not rendered in a run; re-assigning a key through
    the Session State API at the start of every run turns it into ordinary state it keeps.
    """
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith(KEEP):
            st.session_state[key] = st.session_state[key]


def default(key: str, value) -> None:
    """Give widget `key` its first value, set through state so the widget needs no value=."""
    st.session_state.setdefault(key, value)


@contextmanager
def user_errors():
    """Show a LesionLabError, or an OSError (read-only folder, full disk), as st.error with a
    message meant for the user, not a traceback."""
    try:
        yield
    except LesionLabError as exc:
        st.error(md(rendered(str(exc))), icon=":material/error:")
    except OSError as exc:
        st.error(md(rendered(describe_os_error(exc))), icon=":material/error:")


# ---------------------------------------------------------------- small widget helpers


def bump(key: str) -> None:
    """Callback: add one to an integer in session state (e.g. a seed, for "new draws")."""
    st.session_state[key] = int(st.session_state.get(key, 0)) + 1


def pick_random(key: str, options: list) -> None:
    """Callback: set a selectbox's value to one of its options at random."""
    import random

    st.session_state[key] = random.choice(options)


def short_params(drawn: dict) -> str:
    """One step's drawn random parameters as short text: "angle=-12.35, flipped=True"."""
    def fmt(value):
        if isinstance(value, float):
            return f"{value:.2f}"
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(fmt(v) for v in value) + "]"
        return str(value)
    return ", ".join(f"{k}={fmt(v)}" for k, v in drawn.items())


def parse_numbers(text: str) -> list[float] | str:
    """"1, 2.5, 3" -> [1.0, 2.5, 3.0]; text that is not a list of numbers comes back as is,
    for the engine's validation to name it in its error message."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        return text


# ---------------------------------------------------------------- the choices in the URL

URL_RESTORED = "url_restored"  # set once a browser session has read its choices from the URL


def restore_from_url() -> None:
    """At a browser session's first run, take the dataset, pipeline, model and run from the
    URL (a reload or a copied link); name what was dropped as invalid. Later runs: nothing."""
    from lesion_core import links

    if st.session_state.get(URL_RESTORED):
        return
    st.session_state[URL_RESTORED] = True
    choices, problems = links.decode({key: st.query_params.get(key) for key in links.KEYS})
    weights_path = (choices.get("model") or {}).get("weights_path")
    if weights_path and st.session_state.get(auth.EXPOSED):
        try:  # a link must not tell a visitor which server files exist
            access.check_weights_file(weights_path)
        except LesionLabError as exc:
            del choices["model"]
            problems.append(N_("the link's {key} setting was ignored: {error}").format(key="model", error=exc))
    for key, state_key in (("data", DATASET), ("model", MODEL), ("pipeline", PIPELINE), ("run", RUN)):
        if key in choices:
            st.session_state[state_key] = choices[key]
    if "model" in choices:  # the Model page's widgets start from the restored choice
        st.session_state["keep_model_name"] = choices["model"]["name"]
        st.session_state["keep_model_weights"] = choices["model"]["weights"]
        st.session_state["keep_model_freeze"] = choices["model"]["freeze_backbone"]
    for problem in problems:
        st.warning(md(rendered(problem)), icon=":material/link_off:")


def save_to_url() -> None:
    """Write the current choices, the language included, into the URL (run at the end of
    every script run, since a page switch clears the query parameters)."""
    from app_pages import lang
    from lesion_core import links

    if st.query_params.get("lang") != lang.language():
        st.query_params["lang"] = lang.language()
    wanted = links.encode(dataset=dataset_choice(), model=st.session_state.get(MODEL),
                          pipeline=st.session_state.get(PIPELINE), run=st.session_state.get(RUN))
    for key in links.KEYS:
        if key in wanted and st.query_params.get(key) != wanted[key]:
            st.query_params[key] = wanted[key]
        elif key not in wanted and key in st.query_params:
            del st.query_params[key]


# ---------------------------------------------------------------- pipeline and model choices


def pipeline() -> list:
    """The augmentation spec built on the Augmentations page (default: the default_train preset)."""
    from lesion_core import transforms

    if PIPELINE not in st.session_state:
        st.session_state[PIPELINE] = transforms.image_steps(transforms.PRESETS["default_train"])
    return st.session_state[PIPELINE]


def model_choice() -> dict:
    """The model chosen on the Model page: {"name", "weights", "weights_path", "freeze_backbone"}."""
    from lesion_core import models

    return st.session_state.setdefault(MODEL, {"name": models.DEFAULT_MODEL, "weights": "default",
                                               "weights_path": None, "freeze_backbone": False})


# ---------------------------------------------------------------- dataset


def dataset_choice() -> dict:
    """The chosen dataset {"source", "root"}: $LESION_LAB_DATA at first, else the demo."""
    if DATASET not in st.session_state:
        env_root = os.environ.get(DATA_ENV)
        st.session_state[DATASET] = ({"source": "folder", "root": str(paths.absolute(env_root))} if env_root
                                     else {"source": "demo", "root": ""})
    return st.session_state[DATASET]


def choose_dataset(source: str, root: str | Path = "") -> None:
    """Make another dataset current (the pages read it through current_data())."""
    st.session_state[DATASET] = {"source": source, "root": str(paths.absolute(root)) if root else ""}


def import_upload(upload) -> Path:
    """Unpack an uploaded dataset ZIP under cache_dir()/uploads (data.import_upload) and return
    the dataset root, checked as a dataset."""
    return data.import_upload(upload.name, upload.getvalue(), paths.uploads_dir(), check=cache.load_data)


def current_data() -> data.LesionData | None:
    """The chosen dataset, loaded; None (with the error shown) when it cannot be used."""
    choice = dataset_choice()
    try:
        root = cache.demo_root() if choice["source"] == "demo" else choice["root"]
        return cache.load_data(root)
    except LesionLabError as exc:
        st.error(_("The chosen dataset cannot be used: {error}", error=md(rendered(str(exc)))), icon=":material/error:")
        return None


def dataset_name() -> str:
    """Short name of the chosen dataset: "demo", its folder's name or the uploaded ZIP's name."""
    choice = dataset_choice()
    return _("demo") if choice["source"] == "demo" else paths.dataset_name(choice["root"])


# ---------------------------------------------------------------- device


def device_label() -> str:
    """The accelerator training would use: the GPU's name (and how many), or CPU with its core count."""
    gpus = settings.gpu_count()
    if gpus > 1:
        return _("{n} GPUs: {name}", n=gpus, name=torch.cuda.get_device_name(0))
    if gpus:
        return _("GPU: {name}", name=torch.cuda.get_device_name(0))
    cores = os.cpu_count() or 1
    return ngettext("CPU ({cores} core; no GPU found)", "CPU ({cores} cores; no GPU found)", cores, cores=cores)


def runs_root() -> Path:
    """The runs folder ($LESION_LAB_RUNS, else ./runs)."""
    return paths.runs_dir()


def counts_frame(dataset: data.LesionData):
    """Usable images per split (rows) and class (columns), with totals."""
    import pandas as pd

    counts = dataset.report.counts
    frame = pd.DataFrame(
        [[counts.get(s, {}).get(n, 0) for n in dataset.class_names] for s in data.SPLITS],
        index=[_(s) for s in data.SPLITS], columns=classes(dataset.class_names))
    frame[_("total")] = frame.sum(axis=1)
    return frame


# ---------------------------------------------------------------- runs

RUN = "keep_run"  # the sidebar's run picker: the run the Results and Predictions pages show
PENDING_RUN = "pending_run"  # a run to select in the picker on the next run (a new launch)


def all_runs() -> list[runs.RunInfo]:
    """Every run in the runs folder, newest first (read fresh: run folders are the truth)."""
    return runs.list_runs(runs_root())


def selected_run() -> runs.RunInfo | None:
    """The run picked in the sidebar (the newest when none was picked), or None."""
    listed = all_runs()
    chosen = st.session_state.get(RUN)
    return next((r for r in listed if r.id == chosen), listed[0] if listed else None)


def select_run_and_rerun(run_id: str) -> None:
    """Make run_id the sidebar's choice: the picker is already drawn in this run, so the
    choice is handed to the next run (sidebar() applies it before drawing) and we rerun."""
    st.session_state[PENDING_RUN] = run_id
    st.rerun()


def run_label(run: runs.RunInfo) -> str:
    """The picker's text for a run: id, dataset, state and best validation score."""
    if run.damage:
        return _("{run} · {data} (damaged: {damage})", run=run.id, data=run.dataset, damage=rendered(run.damage[0]))
    best = run.best or {}
    if isinstance(best.get("value"), (int, float)):
        return _("{run} · {data} ({state}, best {score})", run=run.id, data=run.dataset, state=_(run.state),
                 score=num(best["value"]))
    return f"{run.id} · {run.dataset} ({_(run.state)})"


def run_caption(run: runs.RunInfo) -> str:
    """One line naming a run, its dataset and its state, for the top of a run's view."""
    return _("Run **{run}** on **{data}** data ({state})", run=md(run.id), data=md(run.dataset), state=_(run.state))


def runs_frame(listed: list[runs.RunInfo]):
    """One row per run: id, state, highlights of the config, best val and test AUC, duration."""
    import pandas as pd

    rows = []
    for run in listed:
        config, best = run.config, run.best or {}
        optim, model = config.get("optim", {}), config.get("model", {})
        test = (run.status.get("final") or {}).get("test") or {}
        # Runs from before headline metrics picked their best epoch by mean AUC.
        headline = config.get("headline_metric") or "mean_auc"
        # What people compare first, so that it is on screen at 1,400 px: which run, on what data,
        # with which model, how good (the headline with its interval) and whether it is done.
        rows.append({
            _("run"): run.id,
            _("data"): setting(run.dataset),
            _("model"): f"{model.get('name', '?')} ({_(str(model.get('weights', '?')))})",
            _("headline"): _(metrics.HEADLINE_METRICS.get(headline, str(headline))),
            _("test"): test.get(headline),
            _("test 95% CI"): bootstrap.stored_interval_text(run.path, "test", headline, test.get(headline)),
            _("state"): (_("damaged: {damage}", damage="; ".join(rendered(p) for p in run.damage)) if run.damage
                         else _(run.state)),
            _("best val"): best.get("value") if best.get("metric") == f"val_{headline}" else None,
            _("best epoch"): best.get("epoch"),
            _("size"): config.get("image_size"),
            _("epochs"): config.get("epochs"),
            _("batch"): config.get("batch_size"),
            _("optimiser"): f"{optim.get('optimizer', '?')} {setting(optim.get('lr', ''))}",
            _("augmentation"): ", ".join(s["name"] for s in config.get("augment", [])),
            _("minutes"): round(run.duration / 60, 1) if run.duration else None,
        })
    return pd.DataFrame(rows)


def runs_overview(limit: int | None = None) -> None:
    """The most recent runs as a table, or a hint where to start one."""
    listed = all_runs()
    if not listed:
        st.info(_("No runs yet. Open **Train** and press Launch to train on the demo data."))
        return
    table, numbers = runs_table_numbers(runs_frame(listed[:limit]))
    st.dataframe(table, hide_index=True, width="stretch", column_config=numbers)


def runs_table_numbers(frame):
    """runs_frame's scores as the page's language writes numbers (Home and Results alike)."""
    from app_pages import lang

    return lang.numbers_table(frame, {_("best val"): 3, _("test"): 3})


def sidebar() -> None:
    """The current dataset and the run picker, on every page."""
    choice = dataset_choice()
    st.caption(_("Dataset"))
    st.markdown(f"**{md(dataset_name())}** ({_(choice['source'])})")
    listed = all_runs()
    ids = [r.id for r in listed]
    if st.session_state.get(PENDING_RUN) in ids:
        st.session_state[RUN] = st.session_state.pop(PENDING_RUN)
    if st.session_state.get(RUN) not in ids:
        gone = st.session_state.pop(RUN, None)
        if gone:  # said once, so another run taking its place is no surprise
            st.warning(_("Run {run} no longer exists: its folder was deleted.", run=gone), icon=":material/folder_off:")
        if ids:
            st.session_state[RUN] = ids[0]
    if listed:
        labels = {r.id: run_label(r) for r in listed}
        st.selectbox(_("Run"), ids, key=RUN, format_func=labels.get,
                     help=_("The run the Results and Predictions pages show"))
    else:
        st.caption(_("No runs yet"))
    active = runs.active_run(runs_root())
    if active:
        st.info(_("Training: {run}", run=active.id), icon=":material/model_training:")
        st.page_link("app_pages/train.py", label=_("Follow it live"), icon=":material/monitoring:")


# ---------------------------------------------------------------- samples and batches


def shown_frame(frame):
    """A table for display: column names, classes, splits and yes/no translated (filter on the original)."""
    view = frame.copy()
    for column, name in (("class", cls), ("split", _), ("mask", _), ("label", None)):
        if column in view and name is not None and view[column].dtype == object:
            view[column] = view[column].map(name)
    return view.rename(columns=_)


def read_sample(record: data.Record, max_side: int | None = 1024) -> dict:
    """A record's sample {"image", "mask", "label", "id"} for display (longer side <= max_side)."""
    image = data.read_image(record.image_path, max_side)
    mask = data.read_mask(record.mask_path, image.shape[:2]) if record.mask_path else None
    return {"image": image, "mask": mask, "label": record.label, "id": record.id}


def sample_from_upload(image_file, mask_file=None) -> dict:
    """A sample from uploaded files: image uint8 (H, W, 3) (longer side <= 1024), mask {0,1} or None."""
    image = data.read_image(image_file, 1024)
    mask = data.read_mask(mask_file, image.shape[:2]) if mask_file is not None else None
    return {"image": image, "mask": mask, "label": 0, "id": image_file.name}


def show_batch(records: list, spec: list, config: dict, class_names, seed: int, pipeline: str) -> None:
    """Draw loader_batch's images, 8 a row, each with its class and id beneath; pipeline
    says in words which pipeline made them."""
    from lesion_core import transforms

    with st.spinner(_("Drawing a batch through the DataLoader...")):
        images, labels, ids = preview.loader_batch(records, spec, config, seed=seed)
    st.caption(_("Pipeline: {pipeline}: {steps}, then the model's resize to {size} px and normalisation "
                 "(undone here for display).", pipeline=pipeline,
                 steps=transforms.describe_steps(transforms.image_steps(spec)), size=config["image_size"]))
    for start in range(0, len(images), 8):
        for column, image, label, sample_id in zip(st.columns(8), images[start:start + 8],
                                                   labels[start:start + 8], ids[start:start + 8]):
            column.image(image, caption=f"{cls(class_names[label])} · {sample_id}", width="stretch")


# ---------------------------------------------------------------- models


def save_upload(upload, folder: str) -> Path:
    """Store an uploaded file under cache_dir()/<folder>/ by content hash; return its path.

    Written atomically every time: a copy cut short (a server killed mid-write) would
    otherwise be reused for every later upload of the same file.
    """
    import hashlib

    content = upload.getvalue()
    target = paths.cache_dir() / folder / f"{hashlib.sha256(content).hexdigest()[:16]}{Path(upload.name).suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    paths.atomic_write_bytes(target, content)
    return target


def set_value(key: str, value) -> None:
    """Callback: store a value in session state (e.g. which prediction is opened)."""
    st.session_state[key] = value


