"""Predictions: browse a run's predictions image by image; classify a new image with a run."""

import streamlit as st

from app_pages import cache, common, lang, review_views
from app_pages.lang import _, cls, fig, num, pct, rendered
from lesion_core import data, inference, plots, runs, transforms
from lesion_core.evaluation import confidence, external, review
from lesion_core.inference import prior as patient_prior
from lesion_core.inference import temperature as scaling

st.title(_("Predictions"))
st.caption(":material/info: " + _("Research tool, not a diagnosis: never use it to decide on a patient's care."))

run = common.selected_run()
if run is None:
    st.info(_("No runs yet: launch one on the **Train** page."))
    st.stop()
st.caption(_("{run} · pick another run in the sidebar", run=common.run_caption(run)))

PER_PAGE = 12
split = st.radio(_("Split"), ["test", "val"], horizontal=True, format_func=lang.options(), key="keep_pred_split")
frame, damaged = None, True
with common.user_errors():
    frame, damaged = cache.prediction_frame(run.path, split), False
if frame is None and not damaged:
    st.info(_("No {split} predictions yet: they are written when the run finishes.", split=_(split)))
elif frame is not None:
    names = list(frame.attrs["class_names"])
    # One switch for the whole browser: captions, sorting, the large view and its loss all show
    # the same probabilities (a caption's raw 41% beside a calibrated 98.6% confused users).
    calibrated = review_views.calibrated_toggle("keep_pred_calibrated", run)
    if calibrated:
        frame = review.scaled_frame(frame, scaling.read_temperature(run.path))
    true_col, pred_col, right_col, sort_col = st.columns(4)
    wanted_true = true_col.multiselect(_("True class"), names, format_func=lang.class_options(), key="keep_pred_true")
    wanted_pred = pred_col.multiselect(_("Predicted class"), names, format_func=lang.class_options(),
                                       key="keep_pred_pred")
    outcome = right_col.radio(_("Outcome"), ["all", "right", "wrong"], horizontal=True, format_func=lang.options(),
                              key="keep_pred_outcome")
    orders = ["loss (worst first)", "confidence (highest first)", "confidence (lowest first)"]
    if "focus" in frame.columns:  # written by evaluate --explain or the Results page
        orders.append("lesion focus (lowest first)")
    order = sort_col.selectbox(_("Sort by"), orders, format_func=lang.options(), key="keep_pred_sort")
    keep = frame["label"].isin(wanted_true or names) & frame["pred"].isin(wanted_pred or names)
    if "focus" in frame.columns:
        frame = frame.assign(focus=review.focus_values(frame))  # numbers; NaN where no score (sorted last)
        if st.checkbox(_("Only images where the model looks mostly outside the lesion (focus < 0.5)"),
                       key="keep_pred_low_focus"):
            keep &= frame["focus"] < 0.5
    if outcome != "all":
        keep &= frame["correct"] == (outcome == "right")
    shown = frame[keep]
    key, ascending = {"loss (worst first)": ("loss", False), "confidence (highest first)": ("confidence", False),
                      "confidence (lowest first)": ("confidence", True),
                      "lesion focus (lowest first)": ("focus", True)}.get(order, ("loss", False))
    shown = shown.sort_values(key, ascending=ascending)
    st.caption(_("{shown} of {total} images · {right} right overall", shown=len(shown), total=len(frame),
                 right=int(frame["correct"].sum())))

    records = {}  # id -> Record; stays empty when the run's data is gone: the table still shows
    with common.user_errors():
        records = cache.run_records(run.path)
    opened = st.session_state.get("pred_open")
    if opened in set(frame["id"]):
        row = frame.set_index("id").loc[opened]
        st.subheader(_("{id}: true {label}, predicted {pred}", id=opened, label=cls(row["label"]), pred=cls(row["pred"])))
        image_col, bars_col = st.columns([3, 2])
        with common.user_errors():
            if opened in records:
                sample = common.read_sample(records[opened])
                with image_col:
                    heat = review_views.heatmap_view(run, sample["image"], sample["mask"], "pred_heatmap")
                image_col.image(transforms.overlay(sample["image"], sample["mask"], "outline") if heat is None else heat,
                                width="stretch")
        probs = [float(row[f"prob_{n}"]) for n in names]
        bars_col.plotly_chart(fig(plots.probability_bars(probs, names, names.index(row["label"]))), key="pred_bars")
        bars_col.caption(_("Cross-entropy loss {loss}", loss=num(row["loss"])))
        known = [c for c in ("group", "age", "sex", "site") if c in frame.columns and str(row[c]) not in ("", "nan")]
        if known:  # the patient metadata the layout has
            bars_col.caption(" · ".join(f"{_(c)} {row[c]:g}" if c == "age" else f"{_(c)} {row[c]}" for c in known))

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
if not (run.path / "best.pt").is_file():  # nothing to classify with: say so before an upload, not after
    st.info(_("run {run} has no best.pt yet (no epoch finished)", run=run.id))
    st.stop()
if runs.trained_on_demo(run.config):
    st.warning(_("This run learned from the synthetic demo images (drawn shapes, not photographs): what it says "
                 "about a real lesion means nothing, however good its scores look. Train a run on real images "
                 "for that."))
image_file = st.file_uploader(_("Image (JPEG or PNG)"), type=["jpg", "jpeg", "png"], key="pred_image")
needs_mask = external.run_needs_mask(run.config)
mask_file = st.file_uploader(_("Lesion mask (needed: this run was trained on lesion crops)") if needs_mask
                             else _("Lesion mask (optional: shown as an outline)"), type=["png"], key="pred_mask")
if image_file is not None:
    with common.user_errors():
        sample = common.sample_from_upload(image_file, mask_file)
        calibrated_col, tta_col = st.columns(2)
        with calibrated_col:
            calibrated = review_views.calibrated_toggle("keep_pred_new_calibrated", run)
        tta = tta_col.toggle(_("Test-time augmentation"), key=f"keep_pred_tta_{run.id}", value=bool(run.config.get("tta")),
                             help=_("Average the 8 flips and 90-degree rotations of the image"))
        meta = {}
        prior = patient_prior.read(run.path)
        if prior is not None:  # the run combines the image with the patient's age, sex and site
            age_col, sex_col = st.columns(2)
            weighs = _("This run also weighs the patient's age and sex (weight {weight}); empty: unknown",
                       weight=num(prior["weight"], 2))
            age = age_col.number_input(_("Patient's age (years)"), min_value=0, max_value=120, value=None, step=1,
                                       key="pred_age", help=weighs)
            sex = sex_col.selectbox(_("Patient's sex"), ["", "female", "male"], key="pred_sex", help=weighs,
                                    format_func=lambda value: _(value) if value else _("unknown"))
            meta = data.patient_meta("" if age is None else age, sex)
        with st.spinner(_("Classifying with {run}...", run=run.id)):
            probs = inference.predict_image(run.path, sample["image"], sample["mask"], calibrated=calibrated, tta=tta,
                                        meta=meta)
        told = confidence.describe(probs)
        image_col, bars_col = st.columns([3, 2])
        with image_col:
            heat = review_views.heatmap_view(run, sample["image"], sample["mask"], "pred_new_heatmap")
        image_col.image(transforms.overlay(sample["image"], sample["mask"], "outline") if heat is None else heat,
                        width="stretch")
        with bars_col:  # the decision, or why it is withheld, is what a clinician reads first
            review_views.decision_line(run, probs, calibrated)
        # Neutral styling whatever the answer: a green "success" box reads as a good result.
        (bars_col.warning if told["uncertain"] else bars_col.info)(rendered(told["headline"]))
        bars_col.plotly_chart(fig(plots.probability_bars(list(probs.values()), list(probs))), key="pred_new_bars")
        bars_col.dataframe([{_("class"): cls(name), _("probability"): pct(p, 1)} for name, p in told["ranked"]],
                           hide_index=True, key="pred_new_table")
        bars_col.caption(rendered(confidence.validation_summary(run.path))
                         or _("This run has no validation results yet: it has not finished."))
