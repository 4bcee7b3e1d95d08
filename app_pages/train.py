"""Train: set every hyperparameter, launch a run in its own process, follow it live, stop it."""

import streamlit as st

from lesion_core import data, models, plots, runs, train, transforms
from app_pages import common, lang
from app_pages.lang import _, classes, fig, num

st.title(_("Train"))

# Defaults small enough that Launch on the demo shows curves within a minute on a 2-core CPU:
# EfficientNet-Lite0 (offline ImageNet weights) at 96 px trains an epoch of the demo in ~10 s.
DEFAULTS = {"keep_tr_size": 96, "keep_tr_batch": 32, "keep_tr_epochs": 3, "keep_tr_max_size": 0,
            "keep_tr_seed": 0, "keep_tr_optimizer": "adamw", "keep_tr_lr": 1e-3, "keep_tr_momentum": 0.9,
            "keep_tr_decay": 0.01, "keep_tr_scheduler": "cosine", "keep_tr_step": 7, "keep_tr_gamma": 0.1,
            "keep_tr_weights": "auto", "keep_tr_device": "auto", "keep_tr_aug": "page"}
for key, value in DEFAULTS.items():
    common.default(key, value)
WAS_ACTIVE = "tr_was_active"  # the run the live part last saw active, to notice its end


def _optimizer_default_decay() -> None:
    """A new optimiser starts from its own weight decay: AdamW 0.01, SGD and Adam 0 (the notebook)."""
    st.session_state["keep_tr_decay"] = 0.01 if st.session_state["keep_tr_optimizer"] == "adamw" else 0.0


def settings(dataset) -> dict:
    """Draw the hyperparameter widgets; return the run's config (validated by train.launch)."""
    choice = common.model_choice()
    entry = models.MODELS[choice["name"]]
    st.markdown(_("**Data** {data} ({n} images) · **model** {model} ({weights} weights{frozen})",
                  data=common.dataset_name(), n=dataset.report.n_usable, model=choice["name"],
                  weights=choice["weights"], frozen=_(", backbone frozen") if choice["freeze_backbone"] else ""))
    st.page_link("app_pages/model.py", label=_("Change the model"), icon=":material/account_tree:")
    data_col, optim_col, sched_col = st.columns(3)
    with data_col:
        size = st.number_input(_("Image size (px)"), min_value=entry.min_input_size, max_value=1024, step=16,
                               key="keep_tr_size",
                               help=_("{model} was designed for {size} px", model=choice["name"], size=entry.input_size))
        batch = st.number_input(_("Batch size"), min_value=1, max_value=512, key="keep_tr_batch")
        epochs = st.number_input(_("Epochs"), min_value=1, max_value=500, key="keep_tr_epochs")
        max_size = st.number_input(_("maxSize (0 = all images)"), min_value=0, step=10, key="keep_tr_max_size",
                                   help=_("Train on a seeded random subset of at most this many images"))
        seed = st.number_input(_("Seed"), min_value=0, step=1, key="keep_tr_seed")
    with optim_col:
        optimizer = st.selectbox(_("Optimiser"), train.OPTIMIZERS, key="keep_tr_optimizer",
                                 on_change=_optimizer_default_decay)
        lr = st.number_input(_("Learning rate"), min_value=1e-7, max_value=10.0, format="%.5f", step=1e-4,
                             key="keep_tr_lr")
        momentum = st.number_input(_("Momentum (SGD)"), min_value=0.0, max_value=0.999, step=0.05,
                                   key="keep_tr_momentum", disabled=optimizer != "sgd")
        decay = st.number_input(_("Weight decay"), min_value=0.0, max_value=1.0, step=0.01, key="keep_tr_decay")
        device = st.selectbox(_("Device"), train.DEVICES, key="keep_tr_device")
    with sched_col:
        scheduler = st.selectbox(_("Scheduler"), train.SCHEDULERS, format_func=lang.options(), key="keep_tr_scheduler")
        step = st.number_input(_("Step size (epochs)"), min_value=1, key="keep_tr_step",
                               disabled=scheduler != "step")
        gamma = st.number_input(_("Gamma"), min_value=0.001, max_value=1.0, step=0.05, key="keep_tr_gamma",
                                disabled=scheduler != "step")
        weights = st.selectbox(_("Class weights"), ["auto", "none", "custom"], format_func=lang.options(),
                               key="keep_tr_weights",
                               help=_("auto: inverse class frequency, so rare classes count as much"))
        if weights == "custom":
            common.default("keep_tr_custom_weights", ", ".join("1" for _ in dataset.class_names))
            text = st.text_input(_("One weight per class, comma-separated"), key="keep_tr_custom_weights",
                                 help=", ".join(classes(dataset.class_names)))
            weights = common.parse_numbers(text)
    augment = st.radio(_("Augmentation"), ["page", *transforms.PRESETS], horizontal=True, key="keep_tr_aug",
                       format_func=lambda n, page=_("the Augmentations page's pipeline"), preset=_("preset {name}"):
                       page if n == "page" else preset.format(name=n))
    spec = common.pipeline() if augment == "page" else transforms.preset(augment, int(size))
    with st.expander(_("Augmentation steps")):
        st.code(", ".join(s["name"] for s in spec) or "(none)")
    choice_root = common.dataset_choice()
    return {
        "data": {"root": "demo" if choice_root["source"] == "demo" else str(dataset.root),
                 "max_size": int(max_size), "class_names": list(dataset.class_names)},
        "model": dict(choice),
        "optim": {"optimizer": optimizer, "lr": float(lr), "momentum": float(momentum), "weight_decay": float(decay)},
        "scheduler": {"name": scheduler, "step_size": int(step), "gamma": float(gamma)},
        "epochs": int(epochs), "batch_size": int(batch), "image_size": int(size), "seed": int(seed),
        "class_weights": weights, "augment": spec, "device": device,
    }


RESUMABLE = ("stopped", "failed", "interrupted")



def show_run(run_id: str) -> None:
    """A run's state, progress, curves and log; while it is active the page refreshes this part."""
    run = next((r for r in common.all_runs() if r.id == run_id), None)
    if run is None:  # its folder was deleted (while the page followed it, perhaps)
        st.info(_("Run {run} no longer exists: its folder was deleted. Press **Launch** to start a new one.", run=run_id))
        if st.session_state.pop(WAS_ACTIVE, None) == run_id:
            st.rerun()  # stop the live refresh
        return
    st.subheader(_("Run {run}", run=run.id))
    cfg = run.config
    st.caption(_("{model} ({weights} weights) at {size} px · {epochs} epochs of batch {batch} · {optimizer} lr {lr} · "
                 "{scheduler} schedule · seed {seed}", model=run.model, weights=cfg.get("model", {}).get("weights"),
                 size=cfg.get("image_size"), epochs=cfg.get("epochs"), batch=cfg.get("batch_size"),
                 optimizer=cfg.get("optim", {}).get("optimizer"), lr=cfg.get("optim", {}).get("lr"),
                 scheduler=cfg.get("scheduler", {}).get("name"), seed=cfg.get("seed")))
    history = runs.read_history(run.path)
    class_names = cfg.get("data", {}).get("class_names") or list(data.CLASS_NAMES)
    active = run.state in runs.ACTIVE_STATES
    message = run.status.get("message", "")
    state_text = f"**{_(run.state)}**: {message.removeprefix(run.state + ': ')}"
    {"failed": st.error, "interrupted": st.warning, "stopped": st.warning}.get(run.state, st.info)(state_text)
    if run.state in RESUMABLE and st.button(_("Resume"), key="tr_resume", icon=":material/resume:",
                                             help=_("Continue from the last completed epoch, as if never stopped")):
        with common.user_errors():
            train.launch_resume(run.path)
            common.select_run_and_rerun(run.id)
    if active:
        fraction, text = runs.progress(run.status)
        st.progress(fraction, text=text)
        stop = st.empty()
        if not runs.stop_requested(run.path) and stop.button(_("Stop"), key="tr_stop", icon=":material/stop:"):
            runs.request_stop(run.path)
        if runs.stop_requested(run.path):
            stop.caption(_("Stop requested: the trainer stops after the current batch and keeps its weights."))
    loss, auc = st.columns(2)
    loss.plotly_chart(fig(plots.loss_curves(history)), key="tr_loss")
    auc.plotly_chart(fig(plots.auc_curves(history, class_names)), key="tr_auc")
    speeds = [r["images_per_s"] for r in history if r.get("phase") == "train" and r.get("images_per_s")]
    if speeds:
        st.caption(_("Training speed per epoch (images/s): {speeds}", speeds=_(", ").join(num(s, 1) for s in speeds)))
    with st.expander(_("train.log")):
        log = run.path / "train.log"
        st.code(log.read_text()[-4000:] if log.exists() else "(no log yet)")
    if not active and st.session_state.get(WAS_ACTIVE) == run.id:
        st.session_state.pop(WAS_ACTIVE)
        st.rerun()  # the run just ended: redraw the whole page, without the live refresh
    if active:
        st.session_state[WAS_ACTIVE] = run.id


@st.fragment(run_every=2)
def live_run(run_id: str) -> None:
    show_run(run_id)


dataset = common.current_data()
if dataset is None:
    st.stop()
config = settings(dataset)
if st.button(_("Launch"), type="primary", key="tr_launch", icon=":material/play_arrow:"):
    with common.user_errors(), st.spinner(_("Starting the trainer...")):
        run_dir = train.launch(config, common.runs_root())
        st.session_state["tr_run"] = run_dir.name
        common.select_run_and_rerun(run_dir.name)

active = runs.active_run(common.runs_root())
if active is not None:
    live_run(active.id)
else:
    latest = common.all_runs()
    shown = st.session_state.get("tr_run") or (latest[0].id if latest else None)
    if shown:
        show_run(shown)
    else:
        st.info(_("Press **Launch** to train with these settings; curves appear here after the first epoch."))
