"""Model: choose the architecture and its weights; see its layers, parameters and output shape."""

import streamlit as st

from lesion_core import models
from app_pages import common

st.title("Model")

WEIGHTS = {"default": "Best offline choice", "random": "Random initialisation",
           "offline": "Pretrained (shipped offline)", "torchvision": "Pretrained (torchvision download)",
           "file": "Local checkpoint file"}

choice = common.model_choice()
common.default("keep_model_name", choice["name"])
name = st.selectbox("Architecture", list(models.MODELS), key="keep_model_name",
                    format_func=lambda n: f"{n}: {models.MODELS[n].description}")
entry = models.MODELS[name]
sources = ["default", *entry.weight_sources]
if st.session_state.get("keep_model_weights") not in sources:
    st.session_state["keep_model_weights"] = "default"
weights = st.radio("Weights", sources, format_func=WEIGHTS.get, horizontal=True, key="keep_model_weights")
weights_path = None
if weights == "file":
    upload = st.file_uploader("Checkpoint (.pt / .pth: a run's best.pt or a state_dict)",
                              type=["pt", "pth"], key="model_upload")
    weights_path = common.save_upload(upload, "weights") if upload else choice.get("weights_path")
    if weights_path is None:
        st.info("Upload a checkpoint to use it.")
        st.stop()
    st.caption(f"Checkpoint: {weights_path}")
freeze = st.checkbox("Freeze the backbone (train the classification head only)", key="keep_model_freeze")
choice = {"name": name, "weights": weights, "weights_path": weights_path and str(weights_path),
          "freeze_backbone": freeze}
st.session_state[common.MODEL] = choice
st.caption(f"Native input {entry.input_size} px (minimum {entry.min_input_size}); normalisation "
           f"mean {entry.mean}, std {entry.std}. The Train page uses this choice.")

size = st.number_input("Input size for the summary (px)", min_value=entry.min_input_size, max_value=1024,
                       value=entry.input_size, step=16, key=f"model_size_{name}")
with common.user_errors():
    model = common.build_model(**choice)
    info = getattr(model, "weights_info", {}) or {}
    if info.get("note"):
        st.warning(info["note"])
    summary = common.summarize(model, choice, int(size))
    total, trainable, output = st.columns(3)
    total.metric("Parameters", f"{summary.total:,}")
    trainable.metric("Trainable", f"{summary.trainable:,}")
    output.metric("Output per image", models.shape_in_words(summary.output_shape),
                  help=f"One score per class; for a batch of {summary.output_shape[0]} images the shape is "
                       f"{tuple(summary.output_shape)} (images, classes)")
    st.caption(f"Weights loaded from: **{info.get('source', weights)}**")

    dataset = common.current_data()
    if dataset is not None:
        with common.user_errors(), st.spinner("Running a real batch through the model..."):  # the tables still show
            shape_in, shape_out = common.real_batch_shapes(model, dataset.split("train"), name, int(size))
            st.success(f"A real batch from the dataset: input {shape_in} -> output {shape_out} "
                       f"(one score per class: {', '.join(dataset.class_names)})")

    layers, params = st.tabs([f"Layers ({len(summary.tree)})", f"Parameters ({len(summary.params)})"])
    layers.caption("Every layer, the blocks that hold others included, in the order the image passes "
                   "through them. Output: what one image has become after the layer (feature maps of "
                   "height x width pixels, or a list of values). Own parameters add up to the total "
                   f"({sum(row['own'] for row in summary.tree):,}); a block's parameters include its layers'.")
    layers.dataframe([{"layer": "\u2003" * max(row["depth"] - 1, 0) + row["name"], "type": row["type"],
                       "output (one image)": row["output"], "output shape": str(row["shape"]),
                       "parameters": row["parameters"], "own parameters": row["own"]}
                      for row in summary.tree], hide_index=True, width="stretch", height=400, key="model_layers")
    params.dataframe([{**row, "shape": str(row["shape"])} for row in summary.params],
                     hide_index=True, width="stretch", height=400)
