"""Lesion Lab: `streamlit run app.py`. Page config, navigation and the sidebar every page shares."""

import streamlit as st
import torch

from app_pages import auth, common, lang
from app_pages.lang import _
from lesion_core.transforms.kernels import use_calling_thread

# The server does per-image work only (previews, summaries, single predictions); training
# runs in its own process. One intra-op thread: on busy cores (a training run beside the
# page) a second spinning thread made 8 draws of a 1024x768 image 9x slower (1.6 s vs
# 0.17 s). Set here, by the entry point, once: set_num_threads is process-wide, so toggling
# it per call would race between browser sessions.
torch.set_num_threads(1)
use_calling_thread()

st.set_page_config(page_title=_("Lesion Lab"), page_icon=":material/biotech:", layout="wide")
auth.require_token()  # before anything shows data: a server reachable from other machines asks first
common.keep_widget_state()
common.restore_from_url()

PAGES = [
    st.Page("app_pages/home.py", title=_("Home"), icon=":material/home:", default=True),
    st.Page("app_pages/dataset.py", title=_("Dataset"), icon=":material/photo_library:"),
    st.Page("app_pages/augment.py", title=_("Augmentations"), icon=":material/auto_fix_high:"),
    st.Page("app_pages/model.py", title=_("Model"), icon=":material/account_tree:"),
    st.Page("app_pages/train.py", title=_("Train"), icon=":material/model_training:"),
    st.Page("app_pages/results.py", title=_("Results"), icon=":material/monitoring:"),
    st.Page("app_pages/compare.py", title=_("Compare"), icon=":material/compare_arrows:"),
    st.Page("app_pages/predictions.py", title=_("Predictions"), icon=":material/grid_view:"),
    st.Page("app_pages/readers.py", title=_("Reader study"), icon=":material/visibility:"),
]
page = st.navigation(PAGES)

with st.sidebar:
    lang.picker()
    common.sidebar()

# Written before the page runs too: what a page changes after st.stop() never reaches the
# browser, so a page that stops (Results with no runs) would otherwise leave a bare address.
common.save_to_url()
try:
    page.run()
finally:  # the choices the page itself made (a new dataset, a launched run)
    common.save_to_url()
