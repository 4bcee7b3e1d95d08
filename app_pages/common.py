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

import math
import os
from contextlib import contextmanager
from pathlib import Path

import streamlit as st
import torch

from lesion_core import access, data, demo, metrics, paths, runs, train
from lesion_core.errors import LesionLabError, describe_os_error
from lesion_core.i18n import N_
from app_pages.lang import _, classes, cls, md, num, rendered, setting

DATASET = "dataset"  # {"source": "demo"|"folder"|"upload", "root": str}
PIPELINE = "pipeline"  # augmentation spec (list of steps) built on the Augmentations page
MODEL = "model"  # the Model page's choice, used by Train and the batch previews
KEEP = "keep_"  # prefix of widget keys whose values survive page switches
# Env var naming a dataset folder to open at start instead of the demo (tests, servers).
DATA_ENV = "LESION_LAB_DATA"

# The server does per-image work only (previews, summaries, single predictions); training
# runs in its own process. One intra-op thread: on busy cores (a training run beside the
# page) a second spinning thread made 8 draws of a 1024x768 image 9x slower (1.6 s vs
# 0.17 s). Set once here: set_num_threads is process-wide, so toggling it per call would
# race between browser sessions.
torch.set_num_threads(1)


@st.cache_resource(show_spinner=False)
def _announce_token() -> None:
    """Print a token made at start on the server's console, once per server process."""
    import sys

    print(f"Lesion Lab is reachable from other machines: open it with ?token={access.expected_token()} "
          f"at the end of its address (or set {access.TOKEN_ENV} to choose the token)", file=sys.stderr, flush=True)


TOKEN_OK = "access_token_ok"
TOKEN_TRIED = "access_token_tried"  # the last wrong token counted
EXPOSED = "exposed"  # this session's requests must give the token: server files are shared only under the roots


def _request() -> tuple[str | None, dict]:
    """(the address the browser's connection comes from, the headers of its request) for this
    session; (None, {}) when no server runs the page (a page script run alone, in tests). Where
    a server runs but does not tell, the peer is "unknown": not loopback, so the token is asked."""
    from unittest import mock

    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if not runtime.exists() or isinstance(runtime.get_instance(), mock.NonCallableMock):
        return None, {}  # AppTest stands a mock in for the server's runtime
    try:
        context = runtime.get_instance().get_client(get_script_run_ctx().session_id).client_context
        headers = {}
        for name, value in context.headers:  # a header given twice keeps both values
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return context.remote_ip or "unknown", headers
    except Exception:  # a Streamlit without this internal API: ask for the token
        return "unknown", {}


def require_token() -> None:
    """Stop this run, showing only a token prompt, when this request must give the access token
    (access.token_required) and this browser session has not given it (?token=... or the
    prompt). Wrong tokens are throttled per client (access.THROTTLE)."""
    peer, headers = _request()
    st.session_state[EXPOSED] = access.token_required(st.get_option("server.address"), peer, headers)
    if st.session_state.get(TOKEN_OK) or not st.session_state[EXPOSED]:
        return
    if access.token_generated():
        _announce_token()
    client = access.client_key(peer, headers)
    given = st.query_params.get("token") or st.session_state.get("access_token_input")
    wait = access.THROTTLE.wait_s(client) if given else 0
    if given and not wait:
        if access.token_ok(given):
            access.THROTTLE.succeeded(client)
            st.session_state[TOKEN_OK] = True
            st.query_params.pop("token", None)  # out of the address bar and the browser history
            return
        if st.session_state.get(TOKEN_TRIED) != given:  # a rerun with the same wrong token is no new guess
            st.session_state[TOKEN_TRIED] = given
            wait = access.THROTTLE.failed(client)
    st.title(_("Lesion Lab"))
    st.text_input(_("Access token"), type="password", key="access_token_input",
                  help=_("This server is reachable from other machines: give the token printed on its "
                         "console when it started (or the {env} it was started with)", env=access.TOKEN_ENV))
    if wait:
        st.error(_("Too many wrong tokens from your address: try again in {seconds} s.", seconds=math.ceil(wait)),
                 icon=":material/lock:")
    elif given:
        st.error(_("That is not the access token."), icon=":material/lock:")
    st.stop()


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
    if weights_path and st.session_state.get(EXPOSED):
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
    from lesion_core import links
    from app_pages import lang

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
    return data.import_upload(upload.name, upload.getvalue(), paths.cache_dir() / "uploads", check=load_data)


@st.cache_resource(show_spinner=False)
def _demo_root() -> str:
    return str(demo.demo_dir())


def demo_root() -> Path:
    """The built-in demo dataset, generated on first use (a few seconds, with a spinner)."""
    with st.spinner(_("Preparing the demo dataset (first start only, a few seconds)...")):
        return Path(_demo_root())


def _folder_stamp(root: Path) -> tuple:
    """Changes when the folder's label tables change, so a stale cached load is not reused."""
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in root.glob("*.csv")))


@st.cache_resource(show_spinner=False, max_entries=4)
def _load(root: str, stamp: tuple) -> data.LesionData:
    return data.load_dataset(root)


def load_data(root: str | Path) -> data.LesionData:
    """load_dataset(root), cached per folder while its CSV files are unchanged; only folders
    under the allowed data roots (lesion_core.access) are opened."""
    root = access.check_data_folder(root)
    with st.spinner(_("Checking the dataset in {root} ...", root=root)):
        return _load(str(root.resolve()), _folder_stamp(root))


def current_data() -> data.LesionData | None:
    """The chosen dataset, loaded; None (with the error shown) when it cannot be used."""
    choice = dataset_choice()
    try:
        root = demo_root() if choice["source"] == "demo" else choice["root"]
        return load_data(root)
    except LesionLabError as exc:
        st.error(_("The chosen dataset cannot be used: {error}", error=md(rendered(str(exc)))), icon=":material/error:")
        return None


def dataset_name() -> str:
    """Short name of the chosen dataset: "demo" or its folder's name."""
    choice = dataset_choice()
    return _("demo") if choice["source"] == "demo" else Path(choice["root"]).name


# ---------------------------------------------------------------- device


def device_label() -> str:
    """The accelerator training would use: the GPU's name (and how many), or CPU with its core count."""
    gpus = train.gpu_count()
    if gpus > 1:
        return _("{n} GPUs: {name}", n=gpus, name=torch.cuda.get_device_name(0))
    if gpus:
        return _("GPU: {name}", name=torch.cuda.get_device_name(0))
    return _("CPU ({cores} cores; no GPU found)", cores=os.cpu_count())


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
        rows.append({
            _("run"): run.id,
            _("data"): setting(run.dataset),
            _("state"): (_("damaged: {damage}", damage="; ".join(rendered(p) for p in run.damage)) if run.damage
                         else _(run.state)),
            _("model"): f"{model.get('name', '?')} ({_(str(model.get('weights', '?')))})",
            _("size"): config.get("image_size"),
            _("epochs"): config.get("epochs"),
            _("batch"): config.get("batch_size"),
            _("optimiser"): f"{optim.get('optimizer', '?')} {setting(optim.get('lr', ''))}",
            _("augmentation"): ", ".join(s["name"] for s in config.get("augment", [])),
            _("headline"): _(metrics.HEADLINE_METRICS.get(headline, str(headline))),
            _("best val"): best.get("value") if best.get("metric") == f"val_{headline}" else None,
            _("best epoch"): best.get("epoch"),
            _("test"): test.get(headline),
            _("test 95% CI"): _ci_text(run, headline, test.get(headline)),
            _("minutes"): round(run.duration / 60, 1) if run.duration else None,
        })
    return pd.DataFrame(rows)


def _ci_text(run: runs.RunInfo, metric: str, value) -> str:
    """The stored 95% interval of a test metric ("[0.80, 0.91]"), "" when there is none.

    The headline AUCs are stored as mean_auc's interval when they are the same number (ISIC
    2017 mean AUC for the 2017 classes, macro AUC for more than two classes)."""
    from lesion_core.evaluation import bootstrap

    found = bootstrap.run_intervals(run.path, "test", compute=False) or {}
    interval = found.get(metric) or found.get("mean_auc")
    if not isinstance(interval, dict) or not isinstance(value, (int, float)) \
            or abs((interval.get("value") or math.nan) - value) > 1e-9:
        return ""
    text = bootstrap.format_interval(interval)
    return text.partition(" ")[2]


def runs_overview(limit: int | None = None) -> None:
    """The most recent runs as a table, or a hint where to start one."""
    listed = all_runs()
    if not listed:
        st.info(_("No runs yet. Open **Train** and press Launch to train on the demo data."))
        return
    st.dataframe(runs_frame(listed[:limit]), hide_index=True, width="stretch")


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


@st.cache_data(show_spinner=False, max_entries=8)
def _image_sizes(image_paths: tuple[str, ...]) -> list[tuple[int, int]]:
    """(width, height) of each image, read from the file headers only."""
    from PIL import Image

    sizes = []
    for path in image_paths:
        with Image.open(path) as image:
            sizes.append(image.size)
    return sizes


def shown_frame(frame):
    """A table for display: column names, classes, splits and yes/no translated (filter on the original)."""
    view = frame.copy()
    for column, name in (("class", cls), ("split", _), ("mask", _), ("label", None)):
        if column in view and name is not None and view[column].dtype == object:
            view[column] = view[column].map(name)
    return view.rename(columns=_)


def sample_frame(dataset: data.LesionData):
    """One row per usable sample: id, label, class, split, width, height, mask (yes/no), and
    group, age, sex, site where the dataset has them."""
    import pandas as pd

    records = dataset.records
    sizes = _image_sizes(tuple(str(r.image_path) for r in records))
    frame = pd.DataFrame({
        "id": [r.id for r in records],
        "label": [r.label for r in records],
        "class": [dataset.class_names[r.label] for r in records],
        "split": [r.split for r in records],
        "width": [w for w, _ in sizes],
        "height": [h for _, h in sizes],
        "mask": [r.mask_path is not None for r in records],
    })
    for column in ("group",) + data.META_COLUMNS:
        values = [r.group if column == "group" else r.meta.get(column, "") for r in records]
        if any(values):
            frame[column] = pd.to_numeric(values, errors="coerce") if column == "age" else values
    return frame


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


def _first_batch(records: list, spec: list, config: dict, shuffle: bool, generator=None) -> tuple:
    """The first (images, labels, ids) batch train.make_loader gives for records; DataError
    when there are none (a dataset of val or test images only has an empty train split)."""
    from lesion_core import train

    if not records:
        raise data.DataError("the training split is empty: this dataset has no training images to show")
    return next(iter(train.make_loader(records, spec, config, shuffle=shuffle, generator=generator)))


def loader_batch(records: list, spec: list, config: dict, seed: int = 0) -> tuple:
    """One shuffled batch exactly as training would see it: train.make_loader (the spec
    finalised for the config's model: fixed size, ToTensor, its Normalize), seeded.

    Returns (images uint8 (N, H, W, 3) with the normalisation undone, labels list[int], ids).
    """
    import torch

    from lesion_core import models, transforms

    entry = models.MODELS[config["model"]["name"]]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        images, labels, ids = _first_batch(records, spec, config, True, torch.Generator().manual_seed(seed))
    return transforms.denormalize(images, entry.mean, entry.std), labels.tolist(), list(ids)


def batch_config(model_name: str, image_size: int, batch_size: int = 16) -> dict:
    """A training config for showing batches: the default recipe with this model and size."""
    from lesion_core import train

    return train.merge_config(train.default_config(), {
        "model": {"name": model_name}, "image_size": image_size, "batch_size": batch_size})


def show_batch(records: list, spec: list, config: dict, class_names, seed: int, pipeline: str) -> None:
    """Draw loader_batch's images, 8 a row, each with its class and id beneath; pipeline
    says in words which pipeline made them."""
    from lesion_core import transforms

    with st.spinner(_("Drawing a batch through the DataLoader...")):
        images, labels, ids = loader_batch(records, spec, config, seed=seed)
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
    runs.atomic_write_bytes(target, content)
    return target


@st.cache_resource(show_spinner=False, max_entries=2)
def _build_model(name: str, weights: str, weights_path: str | None, freeze_backbone: bool, num_classes: int):
    from lesion_core import models

    return models.build_model(name, num_classes, weights=weights, weights_path=weights_path,
                              freeze_backbone=freeze_backbone)


def build_model(name: str, weights: str = "default", weights_path: str | None = None,
                freeze_backbone: bool = False, num_classes: int = 3):
    """models.build_model, cached per choice (big nets take seconds to build)."""
    with st.spinner(_("Building {name} ({weights} weights)...", name=name, weights=_(weights))):
        return _build_model(name, weights, weights_path, freeze_backbone, num_classes)


@st.cache_resource(show_spinner=False, max_entries=4)
def _summarize(_model, choice_key: str, size: int):
    from lesion_core import models

    return models.summarize(_model, size)


def summarize(model, choice: dict, size: int):
    """models.summarize(model, size), cached per model choice and input size."""
    import json

    with st.spinner(_("Summarising the layers...")):
        return _summarize(model, json.dumps(choice, sort_keys=True), size)


def real_batch_shapes(model, records: list, model_name: str, size: int) -> tuple:
    """(input shape, output shape) of one real 4-image batch of records through the model."""
    import torch

    from lesion_core import transforms

    config = batch_config(model_name, size, batch_size=4)
    images, _labels, _ids = _first_batch(records, transforms.preset("eval", size), config, False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(images)
    finally:
        model.train(was_training)
    return tuple(images.shape), tuple(output.shape)


def set_value(key: str, value) -> None:
    """Callback: store a value in session state (e.g. which prediction is opened)."""
    st.session_state[key] = value


@st.cache_data(show_spinner=False, max_entries=8)
def _prediction_frame(path: str, mtime: int):
    from lesion_core import train

    return train.read_predictions(path)


def prediction_frame(run_dir: Path, split: str):
    """predictions_<split>.csv of a run with confidence, loss (-log p(true)) and correct
    columns; frame.attrs["class_names"]; None when the file is not written yet."""
    path = Path(run_dir) / f"predictions_{split}.csv"
    if not path.is_file():
        return None
    return _prediction_frame(str(path), path.stat().st_mtime_ns)


@st.cache_resource(show_spinner=False, max_entries=4)
def _run_records(run_dir: str) -> dict:
    split = runs.read_config(run_dir).get("data", {}).get("split")
    if not split:
        raise data.DataError(_("run {run} has no recorded data split yet", run=Path(run_dir).name))
    try:
        return {r.id: r for r in data.from_spec(split, check_images=False).records}
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # config.json is untrusted input
        raise data.DataError(_("run {run}: config.json: the recorded data split is damaged ({kind}: {error})",
                               run=Path(run_dir).name, kind=type(exc).__name__, error=exc)) from None


@st.cache_data(show_spinner=False, max_entries=8)
def _subgroup_table(path: str, mtime: int) -> list:
    from lesion_core import train
    from lesion_core.evaluation import subgroups

    frame = train.read_predictions(path)
    return subgroups.subgroup_table(frame) if subgroups.has_subgroups(frame) else []


def subgroup_table(run_dir: Path, split: str) -> list:
    """Metrics per sex, age band and site of a run's predictions ([] without metadata)."""
    path = Path(run_dir) / f"predictions_{split}.csv"
    try:
        return _subgroup_table(str(path), path.stat().st_mtime_ns) if path.is_file() else []
    except LesionLabError:  # a damaged file: the Review section below, reading the same file, names it
        return []


def run_records(run_dir: Path) -> dict:
    """id -> Record of the images a run was trained and evaluated on (its recorded split)."""
    return _run_records(str(run_dir))


@st.cache_resource(show_spinner=False, max_entries=2)
def _explainer(run_dir: str, stamp: tuple, method: str, calibrated: bool):
    from lesion_core.evaluation import explain

    return explain.Explainer(run_dir, method, calibrated)


def explainer(run_dir: Path, method: str = "gradcam", calibrated: bool = True):
    """A run's cached heatmap maker; rebuilt when best.pt or calibration.json change."""
    stamp = tuple((Path(run_dir) / name).stat().st_mtime_ns if (Path(run_dir) / name).exists() else None
                  for name in ("best.pt", "calibration.json"))
    return _explainer(str(run_dir), stamp, method, calibrated)


@st.cache_data(show_spinner=False, max_entries=2)
def _export_bytes(run_dir: str, fmt: str, stamp: tuple) -> tuple[bytes, dict]:
    from lesion_core import export

    return export.export_bytes(run_dir, fmt)


def export_bytes(run_dir: Path, fmt: str) -> tuple[bytes, dict]:
    """The run's best model exported to fmt (checked) and its sidecar; redone when best.pt,
    calibration.json or threshold.json change."""
    stamp = tuple((run_dir / name).stat().st_mtime_ns if (run_dir / name).exists() else None
                  for name in ("best.pt", "calibration.json", "threshold.json", "config.json"))
    return _export_bytes(str(run_dir), fmt, stamp)
