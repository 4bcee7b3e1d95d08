"""Predictions: browse a run's predictions image by image; classify a new image with a run."""

import streamlit as st

from lesion_core import plots, train, transforms
from lesion_core.evaluation import confidence, external, review
from app_pages import common, review_views

st.title("Predictions")
st.caption(f":material/info: {confidence.DISCLAIMER}")

run = common.selected_run()
if run is None:
    st.info("No runs yet: launch one on the **Train** page.")
    st.stop()
st.caption(f"{common.run_caption(run)} · pick another run in the sidebar")

PER_PAGE = 12
split = st.radio("Split", ["test", "val"], horizontal=True, key="keep_pred_split")
frame, damaged = None, True
with common.user_errors():
    frame, damaged = common.prediction_frame(run.path, split), False
if frame is None and not damaged:
    st.info(f"No {split} predictions yet: they are written when the run finishes.")
elif frame is not None:
    names = list(frame.attrs["class_names"])
    true_col, pred_col, right_col, sort_col = st.columns(4)
    wanted_true = true_col.multiselect("True class", names, key="keep_pred_true")
    wanted_pred = pred_col.multiselect("Predicted class", names, key="keep_pred_pred")
    outcome = right_col.radio("Outcome", ["all", "right", "wrong"], horizontal=True, key="keep_pred_outcome")
    orders = ["loss (worst first)", "confidence (highest first)", "confidence (lowest first)"]
    if "focus" in frame.columns:  # written by evaluate --explain or the Results page
        orders.append("lesion focus (lowest first)")
    order = sort_col.selectbox("Sort by", orders, key="keep_pred_sort")
    keep = frame["label"].isin(wanted_true or names) & frame["pred"].isin(wanted_pred or names)
    if "focus" in frame.columns:
        frame = frame.assign(focus=review.focus_values(frame))  # numbers; NaN where no score (sorted last)
        if st.checkbox("Only images where the model looks mostly outside the lesion (focus < 0.5)",
                       key="keep_pred_low_focus"):
            keep &= frame["focus"] < 0.5
    if outcome != "all":
        keep &= frame["correct"] == (outcome == "right")
    shown = frame[keep]
    key, ascending = {"loss (worst first)": ("loss", False), "confidence (highest first)": ("confidence", False),
                      "confidence (lowest first)": ("confidence", True),
                      "lesion focus (lowest first)": ("focus", True)}.get(order, ("loss", False))
    shown = shown.sort_values(key, ascending=ascending)
    st.caption(f"{len(shown)} of {len(frame)} images · {int(frame['correct'].sum())} right overall")

    records = {}  # id -> Record; stays empty when the run's data is gone: the table still shows
    with common.user_errors():
        records = common.run_records(run.path)
    opened = st.session_state.get("pred_open")
    if opened in set(frame["id"]):
        row = frame.set_index("id").loc[opened]
        st.subheader(f"{opened}: true {row['label']}, predicted {row['pred']}")
        image_col, bars_col = st.columns([3, 2])
        with common.user_errors():
            if opened in records:
                sample = common.read_sample(records[opened])
                with image_col:
                    heat = review_views.heatmap_view(run, sample["image"], sample["mask"], "pred_heatmap")
                image_col.image(transforms.overlay(sample["image"], sample["mask"], "outline") if heat is None else heat,
                                width="stretch")
        with bars_col:
            calibrated = review_views.calibrated_toggle("keep_pred_calibrated")
        probs = review_views.calibrated_probs(run, [row[f"prob_{n}"] for n in names], calibrated)
        bars_col.plotly_chart(plots.probability_bars(probs, names, names.index(row["label"])), key="pred_bars")
        bars_col.caption(f"Cross-entropy loss {row['loss']:.3f}")
        known = [c for c in ("group", "age", "sex", "site") if c in frame.columns and str(row[c]) not in ("", "nan")]
        if known:  # the patient metadata the layout has
            bars_col.caption(" · ".join(f"{c} {row[c]:g}" if c == "age" else f"{c} {row[c]}" for c in known))

    pages = max(1, -(-len(shown) // PER_PAGE))
    common.default("keep_pred_page", 1)
    st.session_state["keep_pred_page"] = min(st.session_state["keep_pred_page"], pages)
    page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, key="keep_pred_page")
    rows = shown.iloc[(page - 1) * PER_PAGE: page * PER_PAGE]
    for start in range(0, len(rows), 4):
        for column, (_, row) in zip(st.columns(4), rows.iloc[start:start + 4].iterrows()):
            with column, common.user_errors():
                if row["id"] in records:
                    sample = common.read_sample(records[row["id"]], max_side=256)
                    column.image(transforms.overlay(sample["image"], sample["mask"], "outline"), width="stretch")
                mark = "✓" if row["correct"] else "✗"
                column.caption(f"{mark} `{row['id']}`  \ntrue **{row['label']}** · predicted **{row['pred']}** "
                               f"({row['confidence']:.0%})")
                column.button("View large", key=f"pred_open_{row['id']}", on_click=common.set_value,
                              args=("pred_open", row["id"]))

st.subheader("Classify a new image")
image_file = st.file_uploader("Image (JPEG or PNG)", type=["jpg", "jpeg", "png"], key="pred_image")
needs_mask = external.run_needs_mask(run.config)
mask_file = st.file_uploader("Lesion mask (needed: this run was trained on lesion crops)" if needs_mask
                             else "Lesion mask (optional: shown as an outline)", type=["png"], key="pred_mask")
if image_file is not None:
    with common.user_errors():
        sample = common.sample_from_upload(image_file, mask_file)
        calibrated_col, tta_col = st.columns(2)
        with calibrated_col:
            calibrated = review_views.calibrated_toggle("keep_pred_new_calibrated")
        tta = tta_col.toggle("Test-time augmentation", key="keep_pred_tta",
                             help="Average the 8 flips and 90-degree rotations of the image")
        with st.spinner(f"Classifying with {run.id}..."):
            probs = train.predict_image(run.path, sample["image"], sample["mask"], calibrated=calibrated, tta=tta)
        told = confidence.describe(probs)
        image_col, bars_col = st.columns([3, 2])
        with image_col:
            heat = review_views.heatmap_view(run, sample["image"], sample["mask"], "pred_new_heatmap")
        image_col.image(transforms.overlay(sample["image"], sample["mask"], "outline") if heat is None else heat,
                        width="stretch")
        # Neutral styling whatever the answer: a green "success" box reads as a good result.
        (bars_col.warning if told["uncertain"] else bars_col.info)(told["headline"])
        bars_col.plotly_chart(plots.probability_bars(list(probs.values()), list(probs)), key="pred_new_bars")
        bars_col.dataframe([{"class": name, "probability": f"{p:.1%}"} for name, p in told["ranked"]],
                           hide_index=True, key="pred_new_table")
        bars_col.caption(confidence.validation_summary(run.path)
                         or "This run has no validation results yet: it has not finished.")
        with bars_col:
            review_views.decision_line(run, probs, calibrated)
