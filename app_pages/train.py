"""Train: set every hyperparameter, launch a run in its own process, follow it live, stop it."""

import time

import streamlit as st

from app_pages import common, experiments, lang
from app_pages.lang import _, classes, fig, md, num
from lesion_core import data, models, plots, runs, training, transforms
from lesion_core import settings as run_settings  # (this page's settings() draws the form)
from lesion_core.errors import LesionLabError, TrainingError, describe_os_error
from lesion_core.i18n import N_
from lesion_core.settings import draft
from lesion_core.training import duration

st.title(_("Train"))

# The form's first values come from the recipe for the dataset (run_settings.recipe_for: "quick" on
# the demo, so that Launch shows curves within a minute on a 2-core CPU; "standard" on real data).
DEFAULTS = {"keep_tr_max_size": 0, "keep_tr_seed": 0, "keep_tr_weights": "auto", "keep_tr_device": "auto"}
for key, value in DEFAULTS.items():
    common.default(key, value)
RECIPE = "keep_tr_recipe"
FORM_SEEN = "tr_form_seen"  # the form's draft at the last script run, to notice a change
WAS_ACTIVE = "tr_was_active"  # the run the live part last saw active, to notice its end


def _optimizer_default_decay() -> None:
    """A new optimiser starts from its own weight decay: AdamW 0.01, SGD and Adam 0 (the notebook)."""
    st.session_state["keep_tr_decay"] = training.weight_decay({"optimizer": st.session_state["keep_tr_optimizer"]})


def fill_form(cfg: dict, augment: str) -> None:
    """The form's widgets take a complete config's values (a recipe's, a draft's, a run's)."""
    optim, sched, weights = cfg["optim"], cfg["scheduler"], cfg["class_weights"]
    state = st.session_state
    size = cfg["image_size"] or models.MODELS[common.model_choice()["name"]].input_size
    state.update({
        "keep_tr_size": max(int(size), models.MODELS[common.model_choice()["name"]].min_input_size),
        "keep_tr_batch": cfg["batch_size"], "keep_tr_epochs": cfg["epochs"],
        "keep_tr_max_size": cfg["data"]["max_size"], "keep_tr_seed": cfg["seed"],
        "keep_tr_optimizer": optim["optimizer"], "keep_tr_lr": float(optim["lr"]),
        "keep_tr_momentum": float(optim["momentum"]), "keep_tr_decay": training.weight_decay(optim),
        "keep_tr_smoothing": float(optim["label_smoothing"]), "keep_tr_scheduler": sched["name"],
        "keep_tr_step": sched["step_size"], "keep_tr_gamma": float(sched["gamma"]),
        "keep_tr_warmup": float(sched["warmup_epochs"]), "keep_tr_tta": cfg["tta"], "keep_tr_metadata": cfg["metadata"],
        "keep_tr_device": run_settings.device_choice(cfg), "keep_tr_aug": augment,
        "keep_tr_weights": weights if weights in ("auto", "none") else "custom",
    })
    if isinstance(weights, list):
        state["keep_tr_custom_weights"] = ", ".join(f"{w:g}" for w in weights)


def fill_from_recipe() -> None:
    """Callback (and first visit): the form takes the chosen recipe's settings."""
    cfg = run_settings.recipe_config(st.session_state[RECIPE])
    kept = {key: st.session_state[key] for key in DEFAULTS if key in st.session_state}  # no recipe sets these
    # the quick recipe trains on the Augmentations page's pipeline, standard on its measured preset
    fill_form(cfg, "page" if st.session_state[RECIPE] == "quick" else cfg["augment"])
    st.session_state.update(kept)


def reset_to_recipe() -> None:
    """Callback of "Reset to recipe": forget the kept form, fill it from the recipe (and the
    settings no recipe sets from their defaults, as a reload after the reset shows them)."""
    try:
        draft.discard_draft(common.runs_root())
    except OSError as exc:
        st.session_state["tr_draft_warning"] = describe_os_error(exc)
    st.session_state.pop(FORM_SEEN, None)  # the refill is no change of the user's to keep
    st.session_state.update(DEFAULTS)
    fill_from_recipe()


def fill_from_draft(saved: dict, root: str) -> None:
    """First visit: the form as the user left it (the draft kept in the runs folder)."""
    st.session_state[RECIPE] = saved.get("recipe") or run_settings.recipe_for(root)
    cfg = run_settings.merge_config(run_settings.recipe_config(st.session_state[RECIPE]),
                                    {k: v for k, v in saved.items() if k != "augment"})
    fill_form(cfg, saved.get("augment", "page"))


def keep_form(config: dict) -> None:
    """Save the form as a draft when the user changed it since the last script run."""
    kept = draft.from_form(config, None if st.session_state["keep_tr_aug"] == "page" else st.session_state["keep_tr_aug"])
    if st.session_state.get(FORM_SEEN) not in (None, kept):
        try:
            draft.write_draft(common.runs_root(), kept)
        except OSError as exc:  # a read-only or full runs folder: the form works, it is just not kept
            st.warning(_("The form is not kept across a reload: {error}", error=lang.rendered(describe_os_error(exc))))
    st.session_state[FORM_SEEN] = kept


def recipe_choice(root: str) -> str:
    """The recipe selector (first value: the one for the dataset); returns its name."""
    if RECIPE not in st.session_state:
        active = runs.active_run(common.runs_root())
        saved, problem = draft.read_draft(common.runs_root())
        if problem:
            st.session_state["tr_draft_warning"] = problem
        filled = saved is not None
        if saved is not None:  # a reload: the form as the user left it
            fill_from_draft(saved, root)
        elif active is not None:  # a reload while a run trains: the form shows what that run trains with
            use_settings(active.id)
            st.session_state.pop("tr_settings_note", None)
            filled = st.session_state.pop("tr_settings_error", None) is None
        if RECIPE not in st.session_state:  # (no run, or one without a recipe)
            st.session_state[RECIPE] = run_settings.recipe_for(root)
        if not filled:
            fill_from_recipe()
    if "tr_draft_warning" in st.session_state:
        st.warning(lang.rendered(st.session_state.pop("tr_draft_warning")))
    recipe_col, reset_col = st.columns([3, 1], vertical_alignment="bottom")
    reset_col.button(_("Reset to recipe"), key="tr_reset", on_click=reset_to_recipe, icon=":material/restart_alt:",
                     help=_("Your changes to the form are kept across a reload; this discards them and fills the "
                            "form from the recipe"))
    return recipe_col.selectbox(_("Recipe"), list(run_settings.RECIPES), key=RECIPE, on_change=fill_from_recipe,
                                format_func=lang.options(),
                                help=_("The settings to start from: quick (the demo: about a minute) or standard (the "
                                       "default for real data, measured in the README). Choosing one fills the form; "
                                       "change any setting after."))


def limits(key: str) -> dict:
    """A number widget's min, max, step and help: the config schema's (settings.fields)."""
    found = run_settings.number_limits(key)
    return found | {"help": _(found["help"])}


def helptext(key: str) -> str:
    """A setting's help, the config schema's, in the page's language."""
    return _(run_settings.help_text(key))


def settings(dataset) -> dict:
    """Draw the hyperparameter widgets; return the run's config (validated by training.launch)."""
    choice_root = common.dataset_choice()
    root = "demo" if choice_root["source"] == "demo" else str(dataset.root)
    recipe = recipe_choice(root)
    choice = common.model_choice()
    entry = models.MODELS[choice["name"]]
    st.markdown(_("**Data** {data} ({n} images) · **model** {model} ({weights} weights{frozen})",
                  data=common.dataset_name(), n=dataset.report.n_usable, model=choice["name"],
                  weights=_(choice["weights"]), frozen=_(", backbone frozen") if choice["freeze_backbone"] else ""))
    st.page_link("app_pages/model.py", label=_("Change the model"), icon=":material/account_tree:")
    lang.decimal_point_note()
    data_col, optim_col, sched_col = st.columns(3)
    with data_col:
        size = st.number_input(_("Image size (px)"), key="keep_tr_size", **limits("image_size") | {
                               "min_value": entry.min_input_size,
                               "help": _("{model} was designed for {size} px", model=choice["name"], size=entry.input_size)})
        batch = st.number_input(_("Batch size"), key="keep_tr_batch", **limits("batch_size"))
        epochs = st.number_input(_("Epochs"), key="keep_tr_epochs", **limits("epochs"))
        max_size = st.number_input(_("Use at most N images (0 = all)"), key="keep_tr_max_size",
                                   **limits("data.max_size"))
        seed = st.number_input(_("Seed"), key="keep_tr_seed", **limits("seed"))
    with optim_col:
        optimizer = st.selectbox(_("Optimiser"), run_settings.OPTIMIZERS, key="keep_tr_optimizer",
                                 on_change=_optimizer_default_decay)
        lr = st.number_input(_("Learning rate"), format="%.5f", key="keep_tr_lr", **limits("optim.lr"))
        momentum = st.number_input(_("Momentum (SGD)"), key="keep_tr_momentum", disabled=optimizer != "sgd",
                                   **limits("optim.momentum"))
        decay = st.number_input(_("Weight decay"), key="keep_tr_decay", **limits("optim.weight_decay"))
        smoothing = st.number_input(_("Label smoothing"), key="keep_tr_smoothing", **limits("optim.label_smoothing"))
        # labels translated now: the format function is also called outside this script run
        devices = {choice: lang.rendered(label) for choice, label in run_settings.device_choices().items()}
        if st.session_state["keep_tr_device"] not in devices:  # e.g. a run's GPU that this machine lacks
            st.session_state["keep_tr_device"] = "auto"
        device, processes = run_settings.split_device_choice(st.selectbox(
            _("Device"), list(devices), key="keep_tr_device", format_func=devices.__getitem__,
            help=_("Every GPU of this machine is listed; several GPUs train one run through torchrun, one "
                   "process each, with the batch size split between them")))
    with sched_col:
        scheduler = st.selectbox(_("Scheduler"), run_settings.SCHEDULERS, format_func=lang.options(), key="keep_tr_scheduler")
        step = st.number_input(_("Step size (epochs)"), key="keep_tr_step", disabled=scheduler != "step",
                               **limits("scheduler.step_size"))
        gamma = st.number_input(_("Gamma"), key="keep_tr_gamma", disabled=scheduler != "step",
                                **limits("scheduler.gamma"))
        warmup = st.number_input(_("Warm-up (epochs)"), key="keep_tr_warmup", **limits("scheduler.warmup_epochs"))
        weights = st.selectbox(_("Class weights"), ["auto", "none", "custom"], format_func=lang.options(),
                               key="keep_tr_weights", help=helptext("class_weights"))
        if weights == "custom":
            common.default("keep_tr_custom_weights", ", ".join("1" for _ in dataset.class_names))
            text = st.text_input(_("One weight per class, comma-separated"), key="keep_tr_custom_weights",
                                 help=", ".join(classes(dataset.class_names)))
            weights = common.parse_numbers(text)
    tta_col, metadata_col = st.columns(2)
    tta = tta_col.toggle(_("Test-time augmentation"), key="keep_tr_tta", help=helptext("tta"))
    metadata = metadata_col.toggle(_("Patient metadata"), key="keep_tr_metadata", help=helptext("metadata"))
    if st.session_state.pop(common.FROM_AUGMENT, False):  # "Train with this pipeline" on the Augmentations page
        st.session_state["keep_tr_aug"] = "page"
    augment = st.radio(_("Augmentation"), ["page", *transforms.PRESETS], horizontal=True, key="keep_tr_aug",
                       format_func=lambda n, page=_("the Augmentations page's pipeline"), preset=_("preset {name}"):
                       page if n == "page" else preset.format(name=n))
    spec = common.pipeline() if augment == "page" else transforms.preset(augment, int(size))
    st.caption(_("Training augments with: {steps}", steps=" → ".join(s["name"] for s in transforms.image_steps(spec))
                 or _("no step (each image only resized to the model's input)")))
    with common.user_errors():  # a bad page pipeline is reported by Launch too
        evaluation = transforms.image_steps(transforms.eval_spec(spec, int(size)))
        st.caption(_("Evaluation (validation, test, predictions) uses: {steps}, then the model's resize and "
                     "normalisation", steps=transforms.describe_steps(evaluation)),
                   help=lang.rendered(transforms.EVAL_HELP))
    return {
        "data": {"root": root, "max_size": int(max_size), "class_names": list(dataset.class_names)},
        "model": dict(choice),
        "optim": {"optimizer": optimizer, "lr": float(lr), "momentum": float(momentum), "weight_decay": float(decay),
                  "label_smoothing": float(smoothing)},
        "scheduler": {"name": scheduler, "step_size": int(step), "gamma": float(gamma), "warmup_epochs": float(warmup)},
        "epochs": int(epochs), "batch_size": int(batch), "image_size": int(size), "seed": int(seed),
        "class_weights": weights, "augment": spec, "device": device, "processes": processes, "tta": bool(tta),
        "metadata": bool(metadata),
        "recipe": recipe,
    }


def time_estimate(config: dict, dataset) -> None:
    """How long Launch will take, roughly, and on what the guess rests; without a finished run of
    these settings here, a button times a few batches of the model on this machine."""
    try:
        config = run_settings.validate_config(config)
        guess = duration.estimate(config, dataset.report.n_usable, common.all_runs(), duration.timed_speed(config))
    except LesionLabError:  # Launch names what is wrong with the settings
        return
    if guess["basis"] == "reference" and st.button(
            _("Time a few batches here"), key="tr_time_batches",
            disabled=runs.active_run(common.runs_root()) is not None,  # it would time the training beside it
            help=_("Trains the chosen model on a few batches at this image size on this device (about 10 seconds "
                   "on a CPU), for an estimate from this machine's own speed")):
        with common.user_errors(), st.spinner(_("Timing a few batches of {model}...", model=config["model"]["name"])):
            timed = duration.time_batches(config)
            guess = duration.estimate(config, dataset.report.n_usable, common.all_runs(), timed)
    when = _("{low} to {high}", low=_duration(guess["low"]), high=_duration(guess["high"]))
    if guess["basis"] == "run":
        basis = _("at the speed run {run} measured on this machine", run=guess["run"])
    elif guess["basis"] == "timed":
        basis = _("at the speed of a few batches timed on this machine")
    else:
        basis = _("at the reference speed of this kind of device (a 2-core CPU, or a lab GPU), scaled to the "
                  "image size; a finished run here measures this machine for the next guess")
    st.caption(_("Recipe **{recipe}**, {epochs} epochs on {n} images: {when}, {basis}. The progress bar's "
                 "time left follows the run itself from its first batches.",
                 recipe=lang.options()(config["recipe"]), epochs=config["epochs"], n=guess["images"],
                 when=when, basis=basis))


def _duration(seconds: float) -> str:
    """"40 seconds", "7 minutes", "1.5 hours", in the page's language."""
    if seconds < 120:
        return _("{n} seconds", n=num(seconds, 0))
    if seconds < 2 * 3600:
        return _("{n} minutes", n=num(seconds / 60, 0))
    return _("{n} hours", n=num(seconds / 3600, 1))


RESUMABLE = ("stopped", "failed", "interrupted")
SLOW_START_S = 15  # a trainer still queued after this long shows what it printed so far


def use_settings(run_id: str) -> None:
    """Callback: fill the form, the model choice, the pipeline and the dataset from a run's config."""
    run = next((r for r in common.all_runs() if r.id == run_id), None)
    try:
        if run is None:
            raise TrainingError(f"run {run_id} no longer exists")
        # where it trained may not exist here: the form falls back to auto (run_settings.device_choice)
        cfg = run_settings.validate_config({k: v for k, v in run.config.items() if k != "split"}
                                    | {"device": "auto", "processes": 1})
    except LesionLabError as exc:
        st.session_state["tr_settings_error"] = _("The settings of run {run} cannot be used: {error}", run=run_id, error=exc)
        return
    state = st.session_state
    state[common.MODEL] = dict(cfg["model"])  # first: the form's image size is the model's
    fill_form(cfg | {"device": run.config.get("device", "auto"), "processes": run.config.get("processes", 1)}, "page")
    if cfg["recipe"]:
        state[RECIPE] = cfg["recipe"]
    state["keep_model_name"], state["keep_model_weights"] = cfg["model"]["name"], cfg["model"]["weights"]
    state["keep_model_freeze"] = cfg["model"]["freeze_backbone"]
    state[common.PIPELINE] = transforms.image_steps(cfg["augment"])
    # (statements, not one conditional expression: Streamlit's magic would write its value, None)
    if cfg["data"]["root"] == "demo":
        common.choose_dataset("demo")
    else:
        common.choose_dataset("folder", cfg["data"]["root"])
    state["tr_settings_note"] = _("The form now holds the settings of run {run}; press Launch to train with them.",
                                  run=run_id)



def show_run(run_id: str) -> None:
    """A run's state, progress, curves and log; while it is active the page refreshes this part."""
    run = next((r for r in common.all_runs() if r.id == run_id), None)
    if run is None:  # its folder was deleted (while the page followed it, perhaps)
        st.info(_("Run {run} no longer exists: its folder was deleted. Press **Launch** to start a new one.", run=run_id))
        if st.session_state.pop(WAS_ACTIVE, None) == run_id:
            st.rerun()  # stop the live refresh
        return
    active = run.state in runs.ACTIVE_STATES
    if not active and st.session_state.get(WAS_ACTIVE) == run.id:
        # The run just ended: redraw the whole page without the live refresh, before drawing
        # buttons (Resume) that a click would reach only in this last refresh, then lost.
        st.session_state.pop(WAS_ACTIVE)
        st.rerun()
    st.subheader(_("Run {run}", run=run.id))
    cfg = run.config
    st.caption(_("**{data}** data · {model} ({weights} weights) at {size} px · {epochs} epochs of batch {batch} · "
                 "{optimizer} lr {lr} · {scheduler} schedule · seed {seed}", data=lang.setting(run.dataset), model=run.model,
                 weights=_(str(cfg.get("model", {}).get("weights"))), size=cfg.get("image_size"), epochs=cfg.get("epochs"),
                 batch=cfg.get("batch_size"), optimizer=cfg.get("optim", {}).get("optimizer"),
                 lr=lang.setting(cfg.get("optim", {}).get("lr")), scheduler=lang.setting(cfg.get("scheduler", {}).get("name")),
                 seed=cfg.get("seed")))
    history = runs.read_history(run.path)
    class_names = cfg.get("data", {}).get("class_names") or list(data.CLASS_NAMES)
    message = str(run.status.get("message", ""))
    if run.state == "queued":
        waited = time.time() - (run.status.get("updated") or time.time())
        message = N_("{message} ({seconds} s)").format(message=message, seconds=f"{waited:.0f}")
    state_text = f"**{_(run.state)}**: {md(lang.rendered(message.removeprefix(run.state + ': ')))}"
    if run.state == "running":  # the progress bar's line says what it does: one status line, not two
        state_text = f"**{_(run.state)}**"
    damage = md("; ".join(lang.rendered(problem) for problem in run.damage))
    if run.state == runs.DAMAGED:
        state_text = f"**{_(run.state)}**: {damage}"
    elif run.damage:
        st.warning(_("Damaged files in this run: {files}", files=damage))
    {"failed": st.error, "interrupted": st.warning, "stopped": st.warning,
     runs.DAMAGED: st.error}.get(run.state, st.info)(state_text)
    tail = runs.log_tail(run.path, 15)
    if run.state == "failed":
        st.markdown(_("**What to do**: fix what the message names (the data, a setting), then press "
                    "**Resume** to continue from the last completed epoch, or **Launch** to start anew. "
                    "The end of the log:"))
        st.code(tail or _("(the trainer wrote no log)"))
    elif run.state == "queued" and waited > SLOW_START_S:
        st.caption(_("The trainer is slow to start; what it printed so far:"))
        st.code(tail or _("(nothing yet)"))
    buttons = st.columns([1, 2, 3])
    if run.state in RESUMABLE and buttons[0].button(_("Resume"), key="tr_resume", icon=":material/resume:",
                                                    help=_("Continue from the last completed epoch, as if never stopped")):
        with common.user_errors():
            training.launch_resume(run.path)
            common.select_run_and_rerun(run.id)
    buttons[1].button(_("Use this run's settings"), key="tr_use_settings", icon=":material/content_copy:",
                      on_click=use_settings, args=(run.id,),
                      help=_("Fill the form above (and the model, pipeline and dataset) from this run's config"))
    if active:
        fraction, text = runs.progress(run.status)
        st.progress(fraction, text=md(lang.rendered(text)))
        stop = st.empty()
        if not runs.stop_requested(run.path) and stop.button(_("Stop"), key="tr_stop", icon=":material/stop:"):
            runs.request_stop(run.path)
        if runs.stop_requested(run.path):
            stop.caption(_("Stop requested: the trainer stops after the current batch and keeps its weights."))
    if run.state == "finished":
        experiments.final_intervals(run)
    if any(r.get("phase") in ("train", "val") for r in history):
        loss, auc = st.columns(2)
        loss.plotly_chart(fig(plots.loss_curves(history)), key="tr_loss")
        if any(r.get("phase") == "val" and r.get("mean_auc") is not None for r in history):
            auc.plotly_chart(fig(plots.auc_curves(history, class_names)), key="tr_auc")
        else:  # an empty axis from -1 to 6 looked broken
            auc.caption(_("The validation AUC curves appear here when the first validation ends."))
    else:  # empty axes running from -1 looked broken to a new user
        st.caption(_("The loss and validation AUC curves appear here when the first epoch ends."))
    speeds = [r["images_per_s"] for r in history if r.get("phase") == "train" and r.get("images_per_s")]
    if speeds:
        st.caption(_("Training speed per epoch (images/s): {speeds}", speeds=_(", ").join(num(s, 1) for s in speeds)))
    with st.expander(_("train.log")):
        st.code(runs.log_tail(run.path, 60) or _("(no log yet)"))
    if active:
        st.session_state[WAS_ACTIVE] = run.id


@st.fragment(run_every=2)
def live_run(run_id: str) -> None:
    show_run(run_id)


for key, show in (("tr_settings_error", st.error), ("tr_settings_note", st.success)):
    if key in st.session_state:
        show(st.session_state.pop(key))
dataset = common.current_data()
if dataset is None:
    st.stop()
config = settings(dataset)
keep_form(config)
time_estimate(config, dataset)
if st.button(_("Launch"), type="primary", key="tr_launch", icon=":material/play_arrow:"):
    with common.user_errors(), st.spinner(_("Starting the trainer...")):
        run_dir = training.launch(config, common.runs_root())
        common.select_run_and_rerun(run_dir.name)

experiments.sweep_launcher(config)

active = runs.active_run(common.runs_root())
if active is not None:
    live_run(active.id)
else:
    shown = common.selected_run()  # the sidebar's choice: the run this browser follows
    if shown:
        show_run(shown.id)
    else:
        st.info(_("Press **Launch** to train with these settings; curves appear here after the first epoch."))
