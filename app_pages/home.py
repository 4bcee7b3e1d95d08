"""Home: what is loaded, the device training would use, recent runs, where to go next."""

import streamlit as st

from app_pages import common

st.title("Lesion Lab")
st.caption("Train and inspect CNNs that tell nevus, melanoma and seborrheic keratosis apart.")

dataset = common.current_data()
name, size, device = st.columns([1, 1, 2])
name.metric("Dataset", common.dataset_name())
size.metric("Usable images", dataset.report.n_usable if dataset else 0)
device.metric("Device", common.device_label())
if dataset is not None:
    st.dataframe(common.counts_frame(dataset), width="content")

st.subheader("Recent runs")
common.runs_overview(limit=5)

st.subheader("Where to go next")
NEXT = [
    ("app_pages/dataset.py", "Dataset", "choose the demo, a server folder or a ZIP; check it; browse samples"),
    ("app_pages/augment.py", "Augmentations", "build an augmentation pipeline and preview it on real images"),
    ("app_pages/model.py", "Model", "choose an architecture and its weights; see its layers"),
    ("app_pages/train.py", "Train", "set the hyperparameters, launch a run and follow it live"),
    ("app_pages/results.py", "Results", "compare runs; confusion matrices, ROC curves, downloads"),
    ("app_pages/compare.py", "Compare", "did a change help? two runs on the same images, with a verdict"),
    ("app_pages/predictions.py", "Predictions", "browse a run's predictions; classify a new image"),
]
for path, label, text in NEXT:
    st.page_link(path, label=f"**{label}**: {text}")
