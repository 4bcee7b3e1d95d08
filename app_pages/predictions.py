"""Predictions: browse a run's predictions image by image; classify a new image with a run."""

import streamlit as st

from lesion_core import plots, train, transforms
from app_pages import common, lang
from app_pages.lang import _, cls, fig, num, pct

st.title(_("Predictions"))

run = common.selected_run()
if run is None:
    st.info(_("No runs yet: launch one on the **Train** page."))
    st.stop()
st.caption(_("Run **{run}** ({state}) · pick another run in the sidebar", run=run.id, state=_(run.state)))

PER_PAGE = 12
split = st.radio(_("Split"), ["test", "val"], horizontal=True, format_func=lang.options(), key="keep_pred_split")
frame = common.prediction_frame(run.path, split)
if frame is None:
    st.info(_("No {split} predictions yet: they are written when the run finishes.", split=_(split)))
else:
    names = list(frame.attrs["class_names"])
    true_col, pred_col, right_col, sort_col = st.columns(4)
    wanted_true = true_col.multiselect(_("True class"), names, format_func=lang.class_options(), key="keep_pred_true")
    wanted_pred = pred_col.multiselect(_("Predicted class"), names, format_func=lang.class_options(), key="keep_pred_pred")
    outcome = right_col.radio(_("Outcome"), ["all", "right", "wrong"], horizontal=True, format_func=lang.options(),
                              key="keep_pred_outcome")
    order = sort_col.selectbox(_("Sort by"), ["loss (worst first)", "confidence (highest first)",
                                              "confidence (lowest first)"], format_func=lang.options(), key="keep_pred_sort")
    keep = frame["label"].isin(wanted_true or names) & frame["pred"].isin(wanted_pred or names)
    if outcome != "all":
        keep &= frame["correct"] == (outcome == "right")
    shown = frame[keep]
    key, ascending = {"loss (worst first)": ("loss", False), "confidence (highest first)": ("confidence", False),
                      "confidence (lowest first)": ("confidence", True)}[order]
    shown = shown.sort_values(key, ascending=ascending)
    st.caption(_("{shown} of {total} images · {right} right overall", shown=len(shown), total=len(frame),
                 right=int(frame["correct"].sum())))

    records = {}  # id -> Record; stays empty when the run's data is gone: the table still shows
    with common.user_errors():
        records = common.run_records(run.path)
    opened = st.session_state.get("pred_open")
    if opened in set(frame["id"]):
        row = frame.set_index("id").loc[opened]
        st.subheader(_("{id}: true {label}, predicted {pred}", id=opened, label=cls(row["label"]), pred=cls(row["pred"])))
        image_col, bars_col = st.columns([3, 2])
        with common.user_errors():
            if opened in records:
                sample = common.read_sample(records[opened])
                image_col.image(transforms.overlay(sample["image"], sample["mask"], "outline"), width="stretch")
        probs = [row[f"prob_{n}"] for n in names]
        bars_col.plotly_chart(fig(plots.probability_bars(probs, names, names.index(row["label"]))), key="pred_bars")
        bars_col.caption(_("Cross-entropy loss {loss}", loss=num(row["loss"])))

    pages = max(1, -(-len(shown) // PER_PAGE))
    common.default("keep_pred_page", 1)
    st.session_state["keep_pred_page"] = min(st.session_state["keep_pred_page"], pages)
    page = st.number_input(_("Page (of {pages})", pages=pages), min_value=1, max_value=pages, key="keep_pred_page")
    rows = shown.iloc[(page - 1) * PER_PAGE: page * PER_PAGE]
    for start in range(0, len(rows), 4):
        for column, (_index, row) in zip(st.columns(4), rows.iloc[start:start + 4].iterrows()):
            with column, common.user_errors():
                if row["id"] in records:
                    sample = common.read_sample(records[row["id"]], max_side=256)
                    column.image(transforms.overlay(sample["image"], sample["mask"], "outline"), width="stretch")
                mark = "✓" if row["correct"] else "✗"
                column.caption(_("{mark} `{id}`  \ntrue **{label}** · predicted **{pred}** ({confidence})", mark=mark,
                                 id=row["id"], label=cls(row["label"]), pred=cls(row["pred"]),
                                 confidence=pct(row["confidence"])))
                column.button(_("View large"), key=f"pred_open_{row['id']}", on_click=common.set_value,
                              args=("pred_open", row["id"]))

st.subheader(_("Classify a new image"))
image_file = st.file_uploader(_("Image (JPEG or PNG)"), type=["jpg", "jpeg", "png"], key="pred_image")
mask_file = st.file_uploader(_("Lesion mask (optional; needed by mask-based evaluation steps)"), type=["png"],
                             key="pred_mask")
if image_file is not None:
    with common.user_errors():
        sample = common.sample_from_upload(image_file, mask_file)
        with st.spinner(_("Classifying with {run}...", run=run.id)):
            probs = train.predict_image(run.path, sample["image"], sample["mask"])
        image_col, bars_col = st.columns([3, 2])
        image_col.image(transforms.overlay(sample["image"], sample["mask"], "outline"), width="stretch")
        bars_col.plotly_chart(fig(plots.probability_bars(list(probs.values()), list(probs))), key="pred_new_bars")
        best = max(probs, key=probs.get)
        bars_col.success(_("Most likely: **{name}** ({probability})", name=cls(best), probability=pct(probs[best])))
