"""Home: what is loaded, the device training would use, recent runs, where to go next."""

import streamlit as st

from app_pages import common
from app_pages.lang import _

st.title(_("Lesion Lab"))
st.caption(_("Train and inspect CNNs that tell nevus, melanoma and seborrheic keratosis apart."))

dataset = common.current_data()
name, size, device = st.columns([1, 1, 2])
name.metric(_("Dataset"), common.dataset_name())
size.metric(_("Usable images"), dataset.report.n_usable if dataset else 0)
device.metric(_("Device"), common.device_label())
if dataset is not None:
    st.dataframe(common.counts_frame(dataset), width="content")

st.subheader(_("Recent runs"))
common.runs_overview(limit=5)

st.subheader(_("Where to go next"))
NEXT = [
    ("app_pages/dataset.py", _("Dataset"), _("choose the demo, a server folder or a ZIP; check it; browse samples")),
    ("app_pages/augment.py", _("Augmentations"), _("build an augmentation pipeline and preview it on real images")),
    ("app_pages/model.py", _("Model"), _("choose an architecture and its weights; see its layers")),
    ("app_pages/train.py", _("Train"), _("set the hyperparameters, launch a run and follow it live")),
    ("app_pages/results.py", _("Results"), _("compare runs; confusion matrices, ROC curves, downloads")),
    ("app_pages/compare.py", _("Compare"), _("did a change help? two runs on the same images, with a verdict")),
    ("app_pages/predictions.py", _("Predictions"), _("browse a run's predictions; classify a new image")),
]
for path, label, text in NEXT:
    st.page_link(path, label=f"**{label}**: {text}")
