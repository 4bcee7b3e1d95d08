"""Augmentations: build a pipeline step by step and preview its random draws on real images."""

import json
import time

import streamlit as st

from app_pages import common, lang
from app_pages.lang import _, cls, num, pct, rendered
from lesion_core import transforms
from lesion_core.settings import preview

st.title(_("Augmentations"))
st.caption(_("Every step draws its random parameters once and applies them to the image and its "
           "mask alike. Training adds the model's resize, ToTensor and Normalize at the end."))

EDIT = "aug_edit_version"  # bumped on add/remove/move/preset so step widgets start afresh
STEP_NAMES = [name for name, info in transforms.REGISTRY.items() if info.kind != "tensor"]


def set_pipeline(spec) -> None:
    st.session_state[common.PIPELINE] = transforms.image_steps(spec)
    st.session_state[EDIT] = st.session_state.get(EDIT, 0) + 1


def load_preset() -> None:
    """The preset chosen in the box at the moment of the click (not when the button was drawn)."""
    set_pipeline(transforms.PRESETS[st.session_state["keep_aug_preset"]])


def move(index: int, offset: int) -> None:
    spec = list(common.pipeline())
    spec.insert(index + offset, spec.pop(index))
    set_pipeline(spec)


def remove(index: int) -> None:
    set_pipeline([s for i, s in enumerate(common.pipeline()) if i != index])


def add_step() -> None:
    name = st.session_state["aug_add_name"]
    set_pipeline(common.pipeline() + [{"name": name, "params": transforms.REGISTRY[name].defaults()}])


def param_widget(param, value, key: str):
    """A widget for one ParamInfo, returning the value the user set (JSON types)."""
    label, helptext = _(param.name.replace("_", " ")), rendered(param.help) or None
    if param.choices:
        return st.selectbox(label, param.choices, index=list(param.choices).index(value), key=key, help=helptext)
    if param.type == "bool":
        return st.checkbox(label, value=bool(value), key=key, help=helptext)
    if param.type in ("int", "float"):
        cast = int if param.type == "int" else float
        return st.number_input(label, value=cast(value), min_value=None if param.min is None else cast(param.min),
                               max_value=None if param.max is None else cast(param.max),
                               step=cast(1) if param.type == "int" else 0.05, key=key, help=helptext)
    if param.type == "colour":
        rgb = value if isinstance(value, list) else [value] * 3
        picked = st.color_picker(label, "#{:02x}{:02x}{:02x}".format(*tuple(rgb)), key=key, help=helptext)
        return [int(picked[i:i + 2], 16) for i in (1, 3, 5)]
    # int_or_pair, floats3: JSON text ("224" or "[224, 256]"), checked by validate_spec.
    text = st.text_input(label, json.dumps(value), key=key, help=helptext)
    try:
        return json.loads(text)
    except ValueError:
        return text  # validate_spec names the step and parameter


def edit_steps() -> list:
    """Draw one bordered box per step (parameters, move, remove); return the edited spec."""
    version, spec, edited = st.session_state.get(EDIT, 0), common.pipeline(), []
    if spec:
        lang.decimal_point_note()
    for index, step in enumerate(spec):
        info = transforms.REGISTRY[step["name"]]
        with st.container(border=True):
            title, up, down, drop = st.columns([6, 1, 1, 1])
            title.markdown(f"**{index + 1}. {step['name']}**" + (_(" (needs a mask)") if info.needs_mask else ""),
                           help=rendered(info.help))
            up.button("↑", key=f"aug_up_{version}_{index}", on_click=move, args=(index, -1), disabled=index == 0)
            down.button("↓", key=f"aug_down_{version}_{index}", on_click=move, args=(index, 1),
                        disabled=index == len(spec) - 1)
            drop.button("✕", key=f"aug_rm_{version}_{index}", on_click=remove, args=(index,))
            columns = st.columns(max(4, len(info.params)))
            params = {}
            for column, param in zip(columns, info.params):
                with column:
                    params[param.name] = param_widget(param, step["params"].get(param.name, param.default),
                                                      f"aug_p_{version}_{index}_{param.name}")
            edited.append({"name": step["name"], "params": params})
    return edited


def kept_line(share: float) -> str:
    """How much of the lesion a draw still shows; a warning when its crops cut a part off."""
    if share >= LESION_KEPT_WARN:
        return _("lesion kept: {share}", share=pct(share))
    return _(":orange[**lesion kept: {share}**] (a crop cut part of it off)", share=pct(share))


LESION_KEPT_WARN = 0.9  # below this, a crop cut part of the lesion off (resizing alone rounds a thin one by 5%)


def choose_sample(dataset):
    """The image to preview: from the dataset (by class, id or at random) or an upload."""
    source = st.radio(_("Image"), ["dataset", "upload"], horizontal=True, key="keep_aug_source",
                      format_func={"dataset": _("From the dataset"), "upload": _("Upload an image")}.get)
    if source == "upload":
        image = st.file_uploader(_("Image (JPEG or PNG)"), type=["jpg", "jpeg", "png"], key="aug_up_image")
        mask = st.file_uploader(_("Lesion mask (optional, PNG)"), type=["png"], key="aug_up_mask")
        return common.sample_from_upload(image, mask) if image else None
    if dataset is None:
        return None
    names = ["any class"] + list(dataset.class_names)
    by_class, by_id, shuffle = st.columns([2, 3, 1], vertical_alignment="bottom")
    wanted = by_class.selectbox(_("Class"), names, key="keep_aug_class",
                                format_func=lambda n, any_class=_("any class"), name=lang.class_options():
                                any_class if n == "any class" else name(n))
    records = [r for r in dataset.records if wanted == "any class" or dataset.class_names[r.label] == wanted]
    if not records:
        st.info(_("No {name} image in this dataset: pick another class.", name=cls(wanted)))
        return None
    ids = [r.id for r in records]
    if st.session_state.get("keep_aug_id") not in ids:
        st.session_state["keep_aug_id"] = ids[0]
    shuffle.button(_("Random"), key="aug_random", on_click=common.pick_random, args=("keep_aug_id", ids))
    chosen = by_id.selectbox(_("Image id"), ids, key="keep_aug_id")
    return common.read_sample(records[ids.index(chosen)])


dataset = common.current_data()
with common.user_errors():
    sample = choose_sample(dataset)

st.subheader(_("Pipeline"))
preset_col, load_col, _spare = st.columns([2, 1, 3], vertical_alignment="bottom")
common.default("keep_aug_preset", "default_train")  # the preset the starting pipeline comes from
preset_col.selectbox(_("Preset"), list(transforms.PRESETS), key="keep_aug_preset")
load_col.button(_("Load preset"), key="aug_load_preset", on_click=load_preset)
edited = edit_steps()
add_col, add_button, _spare = st.columns([2, 1, 3], vertical_alignment="bottom")
add_col.selectbox(_("Step to add"), STEP_NAMES, key="aug_add_name",
                  help="\n".join(f"- **{n}**: {rendered(transforms.REGISTRY[n].help)}" for n in STEP_NAMES))
add_button.button(_("Add step"), key="aug_add", on_click=add_step)

spec = None
with common.user_errors():
    spec = transforms.validate_spec(edited)
    st.session_state[common.PIPELINE] = spec

if spec is not None and sample is not None:
    st.subheader(_("Draws"))
    count, seed_col, again, mode_col = st.columns([2, 2, 1, 2], vertical_alignment="bottom")
    common.default("keep_aug_n", 8)
    n = count.slider(_("Number of draws"), 1, 16, key="keep_aug_n")
    common.default("keep_aug_seed", 0)
    seed = seed_col.number_input(_("Seed"), min_value=0, step=1, key="keep_aug_seed")
    again.button(_("New draws"), key="aug_new", on_click=common.bump, args=("keep_aug_seed",))
    mode = mode_col.radio(_("Mask"), ["outline", "overlay"], horizontal=True, format_func=lang.options(),
                          key="keep_aug_mask")
    with common.user_errors():
        started = time.perf_counter()
        draws = transforms.preview_draws(sample, spec, n=n, seed=int(seed))
        st.caption(_("{n} draws of a {width}x{height} image in {seconds} s", n=n, width=sample["image"].shape[1],
                     height=sample["image"].shape[0], seconds=num(time.perf_counter() - started, 2)))
        tiles = [(sample, _("original"))] + [
            (out, "  \n".join([kept_line(out["lesion_kept"])] * (out["lesion_kept"] is not None) + [
                f"{step['name']}: {common.short_params(drawn)}" for step, drawn in zip(spec, params) if drawn]))
            for out, params in draws]
        for start in range(0, len(tiles), 4):
            for column, (shown, caption) in zip(st.columns(4), tiles[start:start + 4]):
                column.image(transforms.overlay(shown["image"], shown["mask"], mode), width="stretch")
                column.caption(caption or _("(nothing random drawn)"))

if spec is not None and dataset is not None:
    st.subheader(_("A training batch with this pipeline"))
    model_name = common.model_choice()["name"]
    size_col, seed_col = st.columns(2)
    common.default("keep_aug_batch_size", 128)
    size = size_col.number_input(_("Image size (px)"), min_value=32, max_value=512, step=16, key="keep_aug_batch_size")
    common.default("keep_aug_batch_seed", 0)
    batch_seed = seed_col.number_input(_("Batch seed"), min_value=0, step=1, key="keep_aug_batch_seed")
    with common.user_errors():
        common.show_batch(dataset.split("train"), spec, preview.batch_config(model_name, int(size)),
                          dataset.class_names, int(batch_seed), pipeline=_("this page's pipeline"))

if spec is not None:
    st.subheader(_("Pipeline as JSON"))
    text = json.dumps(spec, indent=2)
    st.code(text, language="json")
    st.download_button(_("Download pipeline.json"), text, file_name="pipeline.json", mime="application/json",
                       key="aug_download", on_click="ignore")
    if st.button(_("Train with this pipeline"), key="aug_train", icon=":material/model_training:"):
        st.session_state[common.FROM_AUGMENT] = True  # the Train page then selects this page's pipeline
        st.switch_page("app_pages/train.py")
