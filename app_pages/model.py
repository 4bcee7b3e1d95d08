"""Model: choose the architecture and its weights; see its layers, parameters and output shape."""

import streamlit as st

from app_pages import cache, common, lang
from app_pages.lang import _, classes, num, rendered
from lesion_core import models
from lesion_core.settings import preview

st.title(_("Model"))

WEIGHTS = {"default": _("Best offline choice"), "random": _("Random initialisation"),
           "offline": _("Pretrained (shipped offline)"), "torchvision": _("Pretrained (torchvision download)"),
           "file": _("Local checkpoint file")}

choice = common.model_choice()
common.default("keep_model_name", choice["name"])
name = st.selectbox(_("Architecture"), list(models.MODELS), key="keep_model_name",
                    format_func=lambda n, tr=lang.options(): f"{n}: {tr(models.MODELS[n].description)}")
entry = models.MODELS[name]
sources = ["default", *entry.weight_sources]
if st.session_state.get("keep_model_weights") not in sources:
    st.session_state["keep_model_weights"] = "default"
weights = st.radio(_("Weights"), sources, format_func=WEIGHTS.get, horizontal=True, key="keep_model_weights")
weights_path = None
if weights == "file":
    upload = st.file_uploader(_("Checkpoint (.pt / .pth: a run's best.pt or a state_dict)"),
                              type=["pt", "pth"], key="model_upload")
    weights_path = common.save_upload(upload, "weights") if upload else choice.get("weights_path")
    if weights_path is None:
        st.info(_("Upload a checkpoint to use it."))
        st.stop()
    st.caption(_("Checkpoint: {path}", path=weights_path))
freeze = st.checkbox(_("Freeze the backbone (train the classification head only)"), key="keep_model_freeze")
choice = {"name": name, "weights": weights, "weights_path": weights_path and str(weights_path),
          "freeze_backbone": freeze}
st.session_state[common.MODEL] = choice
st.caption(_("Native input {size} px (minimum {minimum}); normalisation mean {mean}, std {std}. The Train page "
             "uses this choice.", size=entry.input_size, minimum=entry.min_input_size, mean=entry.mean, std=entry.std))

size = st.number_input(_("Input size for the summary (px)"), min_value=entry.min_input_size, max_value=1024,
                       value=entry.input_size, step=16, key=f"model_size_{name}")
with common.user_errors():
    model = cache.build_model(**choice)
    info = getattr(model, "weights_info", {}) or {}
    if info.get("note"):
        st.warning(rendered(info["note"]))
    summary = cache.summarize(model, choice, int(size))
    total, trainable, output = st.columns(3)
    total.metric(_("Parameters"), num(summary.total, 0))
    trainable.metric(_("Trainable"), num(summary.trainable, 0))
    output.metric(_("Output per image"), rendered(models.shape_in_words(summary.output_shape)),
                  help=_("One score per class; for a batch of {n} images the shape is {shape} (images, classes)",
                         n=summary.output_shape[0], shape=tuple(summary.output_shape)))
    st.caption(_("Weights loaded from: **{source}**", source=_(info.get("source", weights))))

    dataset = common.current_data()
    if dataset is not None:
        with common.user_errors(), st.spinner(_("Running a real batch through the model...")):  # the tables still show
            shape_in, shape_out = preview.real_batch_shapes(model, dataset.split("train"), name, int(size))
            st.success(_("A real batch from the dataset: input {shape_in} -> output {shape_out} (one score per "
                         "class: {classes})", shape_in=shape_in, shape_out=shape_out,
                         classes=", ".join(classes(dataset.class_names))))

    layers, params = st.tabs([_("Layers ({n})", n=len(summary.tree)), _("Parameters ({n})", n=len(summary.params))])
    layers.caption(_("Every layer, the blocks that hold others included, in the order the image passes "
                     "through them. Output: what one image has become after the layer (feature maps of "
                     "height x width pixels, or a list of values). Own parameters add up to the total "
                     "({total}); a block's parameters include its layers'.",
                     total=num(sum(row["own"] for row in summary.tree), 0)))
    layers.dataframe([{_("layer"): "\u2003" * max(row["depth"] - 1, 0) + row["name"], _("type"): row["type"],
                       _("output (one image)"): rendered(row["output"]), _("output shape"): str(row["shape"]),
                       _("parameters"): row["parameters"], _("own parameters"): row["own"]}
                      for row in summary.tree], hide_index=True, width="stretch", height=400, key="model_layers")
    params.dataframe([{_(k): v for k, v in {**row, "shape": str(row["shape"])}.items()} for row in summary.params],
                     hide_index=True, width="stretch", height=400)
