"""The review sections the Results and Predictions pages draw (calibration, operating point,
lesion focus, heatmaps): one function per section, so each page adds them with one call.

Not a page itself (app.py does not list it); the computing is in lesion_core.evaluation.
"""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from app_pages import cache, common, lang
from app_pages.lang import _, cls, fig, num, pct
from lesion_core import transforms
from lesion_core.evaluation import calibration, explain, figures, operating, review
from lesion_core.inference.decision import decide
from lesion_core.inference import decision as rules
from lesion_core.inference import temperature as scaling


def _pct(value) -> str:
    return pct(None if value is None or (isinstance(value, float) and math.isnan(value)) else value, 1)


def _signed(value) -> str:
    """A change with its sign (+0.012), in the current language's notation."""
    text = num(value)
    return text if text.startswith("-") else "+" + text


def calibrated_toggle(key: str, run) -> bool:
    """The page's 'calibrated probabilities' switch (on by default), under a warning when the
    run's calibration.json was ignored (damaged, or a temperature out of range): the page then
    shows raw probabilities whatever the switch says, and says so."""
    fitted = scaling.read_calibration(run.path)
    if fitted.problem:
        st.warning(lang.rendered(fitted.problem))
    elif fitted.scaled and not fitted.by_default:
        st.caption(_("Raw probabilities by default: calibration {why}", why=lang.rendered(fitted.note or "")))
    common.default(key, fitted.by_default)
    return st.toggle(_("Calibrated probabilities"), key=key,
                     help=_("Temperature scaling fitted on the validation split (calibration.json). Off: the raw softmax."))


def results_review(run, split: str) -> None:
    """Results page: calibration, operating point and lesion focus of one run's split."""
    frame = None
    with common.user_errors():  # a damaged predictions file is named, and the section left out
        frame = cache.prediction_frame(run.path, split)
    if frame is None:
        return
    labels, raw, names = review.frame_arrays(frame)
    temperature = scaling.read_temperature(run.path)
    st.subheader(_("Review"))
    calibrated = calibrated_toggle("keep_res_calibrated", run)
    probs = scaling.apply_temperature(raw, temperature if calibrated else 1.0)
    with st.expander(_("Calibration: does 80% mean 80%?"), expanded=True):
        _calibration_section(run, labels, raw, temperature)
    with st.expander(_("Operating point: sensitivity and specificity at a threshold"), expanded=True):
        _operating_section(run, labels, probs, names, calibrated, split)
    with st.expander(_("Lesion focus: does the model look at the lesion?"), expanded=True):
        _focus_section(run, split, frame, names)
    with st.expander(_("Test-time augmentation")):
        _tta_section(run, split, calibrated)


def _calibration_section(run, labels, raw, temperature) -> None:
    report = calibration.report(raw, labels, temperature)
    t, ece, brier = st.columns(3)
    t.metric(_("Temperature"), num(temperature, 2),
             help=_("Logits are divided by T: T > 1 softens over-confident probabilities, T < 1 sharpens them"))
    ece.metric(_("ECE (15 bins)"), num(report["ece_calibrated"]), _signed(report["ece_calibrated"] - report["ece"]),
               delta_color="inverse", help=_("Mean gap between confidence and accuracy, weighted by bin size"))
    brier.metric(_("Brier score"), num(report["brier_calibrated"]),
                 _signed(report["brier_calibrated"] - report["brier"]), delta_color="inverse")
    note = scaling.read_note(run.path)
    if note:
        st.info(lang.rendered(note))
    if not (run.path / scaling.CALIBRATION_FILE).is_file():
        st.info(_("This run has no calibration.json (trained before calibration existed): probabilities are raw."))
        if st.button(_("Fit calibration on the validation split"), key="res_fit_calibration"):
            with common.user_errors():
                calibration.calibrate_run(run.path)
                st.rerun()
    st.plotly_chart(fig(figures.reliability_diagram(report["reliability"], report["reliability_calibrated"])),
                    key="res_reliability")


def _operating_section(run, labels, probs, names, calibrated: bool, split: str) -> None:
    st.caption(_("On the {kind} probabilities of the {split} split; an image is flagged when p(class) >= the "
                 "threshold.", kind=_("calibrated") if calibrated else _("raw"), split=_(split)))
    points = operating.operating_points(labels, probs, names)
    rows = [{_("class"): cls(n), **{_("sens @ spec {spec}", spec=num(float(k), 2)): v for k, v in p["sens_at_spec"].items()},
             _("average precision"): p["average_precision"]} for n, p in points.items()]
    rows, numbers = lang.numbers_table(rows, {column: 3 for column in rows[0] if column != _("class")} if rows else {})
    st.dataframe(rows, hide_index=True, width="stretch", column_config=numbers)
    default_class = "melanoma" if "melanoma" in names else names[-1]
    common.default("keep_res_op_class", default_class)
    pick, mode = st.columns(2)
    name = pick.selectbox(_("Class (against the rest)"), names, format_func=lang.class_options(),
                          key="keep_res_op_class")
    how = mode.radio(_("Choose by"), ["threshold", "specificity at least"], horizontal=True, format_func=lang.options(),
                     key="keep_res_op_mode")
    lang.decimal_point_note()  # the slider below
    c = names.index(name)
    is_class, scores = labels == c, probs[:, c]
    saved = rules.read_threshold(run.path)
    if how == "threshold":
        # after a reload the slider starts at the saved rule, not at 0.50 beside it
        common.default("keep_res_op_threshold", saved["threshold"] if saved and saved["class"] == name else 0.5)
        threshold = st.slider(_("Threshold on p(class)"), 0.0, 1.0, step=0.005, key="keep_res_op_threshold")
    else:
        common.default("keep_res_op_spec", 0.89)
        target = st.slider(_("Specificity at least"), 0.5, 1.0, step=0.01, key="keep_res_op_spec")
        threshold = operating.sensitivity_at_specificity(is_class, scores, target)[1]
        if math.isnan(threshold):
            st.warning(_("No threshold is defined: the split has no {name} images or only {same} images.",
                         name=cls(name), same=cls(name)))
            return
        if threshold > 1.0:  # the ROC's first point: only flagging nothing reaches that specificity
            st.caption(_("Only flagging no image reaches specificity {target} on this split.", target=num(target, 2)))
            threshold = 1.0
    table = operating.table_at(is_class, scores, threshold)
    cols = st.columns(5)
    for column, (label, key) in zip(cols, ((_("Sensitivity"), "sensitivity"), (_("Specificity"), "specificity"),
                                           (_("PPV"), "ppv"), (_("NPV"), "npv"))):
        column.metric(label, _pct(table[key]))
    cols[4].metric(_("Threshold"), num(threshold))
    st.table({"": [_("true {name}", name=cls(name)), _("true other")],
              _("flagged {name}", name=cls(name)): [table["tp"], table["fp"]],
              _("not flagged"): [table["fn"], table["tn"]]})
    roc, pr = st.columns(2)
    roc.plotly_chart(fig(figures.roc_with_point(is_class, scores, table, name, c)), key="res_op_roc")
    pr.plotly_chart(fig(figures.pr_with_point(is_class, scores, table, name, c)), key="res_op_pr")
    _save_rule(run, name, float(threshold), calibrated, split, saved)


def _save_rule(run, name: str, threshold: float, calibrated: bool, split: str, saved: dict | None) -> None:
    """The saved rule, and Save: on the validation split only (test is previewed, never chosen
    on), asking before it replaces a different saved rule."""
    if saved:
        measured = (_(" (on validation: sensitivity {sens}, specificity {spec})", sens=_pct(saved["sensitivity"]),
                      spec=_pct(saved["specificity"])) if "sensitivity" in saved else "")
        st.info(_("Saved decision rule: refer when p({name}) >= {threshold}", name=cls(saved["class"]),
                  threshold=num(saved["threshold"])) + measured)
    if split != "val":
        st.caption(_("Decision rules are chosen on the validation split: switch to val to save one. The {split} split "
                     "is for previewing what a rule does.", split=_(split)))
        return
    same = saved and saved["class"] == name and abs(saved["threshold"] - threshold) < 1e-9 \
        and saved["calibrated"] == calibrated
    if same:
        return
    confirm_key = "res_op_confirm"
    if st.button(_("Save: refer when p({name}) >= {threshold}", name=cls(name), threshold=num(threshold)),
                 key="res_op_save",
                 help=_("`predict` and the Predictions page then report the decision for new images")):
        if saved:
            st.session_state[confirm_key] = (name, threshold, calibrated)
        else:
            _write_rule(run, name, threshold, calibrated)
    if saved and st.session_state.get(confirm_key) == (name, threshold, calibrated):
        st.warning(_("This replaces the saved rule (refer when p({old}) >= {old_threshold}).", old=cls(saved["class"]),
                     old_threshold=num(saved["threshold"])))
        if st.button(_("Replace the saved rule"), key="res_op_replace"):
            st.session_state.pop(confirm_key, None)
            _write_rule(run, name, threshold, calibrated)


def _write_rule(run, name: str, threshold: float, calibrated: bool) -> None:
    with common.user_errors():
        operating.save_threshold(run.path, name, threshold, calibrated)
        st.success(_("Saved with the run (threshold.json)."))


def _tta_section(run, split: str, calibrated: bool) -> None:
    if not st.toggle(_("Average the 8 flips and 90-degree rotations"), key="res_tta",
                     help=_("Runs the model again on every image of the split, 8 times: takes a while on a CPU")):
        return
    from lesion_core import inference

    key = f"res_tta_{run.id}_{split}_{calibrated}"
    if key not in st.session_state:
        with common.user_errors(), st.spinner(_("Evaluating with and without test-time augmentation...")):
            plain = inference.evaluate_run(run.path, split, calibrated=calibrated, tta=False)
            tta = inference.evaluate_run(run.path, split, calibrated=calibrated, tta=True)
            st.session_state[key] = {"auc": plain["auc"], "auc_tta": tta["auc"], "mean_auc": plain["mean_auc"],
                                     "mean_auc_tta": tta["mean_auc"], "class_names": plain["class_names"]}
            review.update_metrics(run.path, split, {"tta": {k: v for k, v in st.session_state[key].items()
                                                            if k != "class_names"}})
    result = st.session_state.get(key)
    if result:
        rows = [{_("class"): cls(n), "AUC": a, _("AUC with TTA"): t}
                for n, a, t in zip(result["class_names"], result["auc"], result["auc_tta"])]
        rows.append({_("class"): _("mean (scored classes)"), "AUC": result["mean_auc"],
                     _("AUC with TTA"): result["mean_auc_tta"]})
        rows, numbers = lang.numbers_table(rows, {"AUC": 3, _("AUC with TTA"): 3})
        st.dataframe(rows, hide_index=True, width="stretch", column_config=numbers)


def _focus_section(run, split: str, frame, names) -> None:
    focus = review.focus_values(frame)
    if focus is None:
        st.caption(_("No heatmaps yet for {split}. They take about a second per image on a CPU.", split=_(split)))
        if st.button(_("Compute heatmaps for the {split} split", split=_(split)), key="res_explain_split"):
            with common.user_errors(), st.spinner(_("Computing Grad-CAM heatmaps...")):
                scores = explain.explain_split(run.path, split)
                labels = dict(zip(frame["id"], frame["label"]))
                review.update_metrics(run.path, split, {"explain": explain.summarize(
                    scores, labels, dict(zip(frame["id"], frame["correct"])))})
                explain.add_focus_columns(run.path / f"predictions_{split}.csv", scores)
                st.rerun()
        return
    defined = focus[~np.isnan(focus)]
    if not defined.size:
        st.caption(_("No image of this split has a lesion mask: no focus score."))
        return
    peaks = frame["peak_in_lesion"].astype(str).str.lower()
    mean, lift, low, hit = st.columns(4)
    mean.metric(_("Mean lesion focus"), num(defined.mean(), 2), help=_("Share of the heatmap inside the lesion mask"))
    shares = review.numeric_column(frame, "lesion_share")
    if shares is not None and (~np.isnan(shares)).any():
        share = float(np.nanmean(shares))
        lift.metric(_("Focus lift"), num(defined.mean() / share, 2),
                    help=_("Focus divided by the share of the model's view the lesion covers: 1.0 = no preference "
                           "for the lesion"))
        st.caption(_("The lesion covers {share} of what this model sees, so a heatmap spread evenly would have a "
                     "focus of {share_number}: compare runs by the focus lift, not the focus.",
                     share=_pct(share), share_number=num(share, 2)))
    if transforms.run_crops_to_lesion(run.config):
        st.info(_lesion_crop_focus())
    low.metric(_("Images with focus < 0.5"), _pct(float((defined < 0.5).mean())))
    hit.metric(_("Pointing game"), _pct(float((peaks[~np.isnan(focus)] == "true").mean())),
               help=_("Share of images whose heatmap peak lies inside the lesion"))
    st.plotly_chart(fig(figures.focus_by_class(focus, frame["label"], frame["correct"], names)), key="res_focus")


def _lesion_crop_focus() -> str:
    return _("This run crops each image to its lesion before the model sees it, so the lesion fills most of the "
             "model's view and almost any heatmap scores a high lesion focus: the focus lift says whether the model "
             "prefers the lesion.")


def heatmap_view(run, image: np.ndarray, mask, key: str, class_names=None) -> np.ndarray | None:
    """Predictions page: a 'show heatmap' switch; the overlay (model's view, mask outline) or None."""
    if not st.toggle(_("Show where the model looks (Grad-CAM)"), key=key):
        return None
    with common.user_errors(), st.spinner(_("Computing the heatmap...")):
        result = cache.explainer(run.path).explain(image, mask)
        caption = _("Grad-CAM of **{name}**; the yellow box marks what the model saw", name=cls(result.target_class))
        if result.focus_lift is not None:
            caption += _(" · the lesion covers {share} of the model's view, focus lift {lift} (1.0: no preference)",
                         share=_pct(result.lesion_share), lift=num(result.focus_lift, 2))
        if result.focus is not None:
            caption += (_(" · lesion focus {focus}, peak inside the lesion", focus=num(result.focus, 2))
                        if result.peak_in_lesion else
                        _(" · lesion focus {focus}, peak outside the lesion", focus=num(result.focus, 2)))
        st.caption(caption)
        if transforms.run_crops_to_lesion(run.config):
            st.caption(_lesion_crop_focus())
        return result.overlay()
    return None


def decision_line(run, probs: dict, calibrated: bool) -> None:
    """The saved threshold's decision for one image, when the run has one."""
    outcome = decide(run.path, probs, calibrated, scaling.read_temperature(run.path))
    if outcome["decision_withheld"]:  # a weak model refers nobody, and says so first, in a box
        st.warning(lang.rendered(outcome["decision_withheld"]))
    elif outcome["decision"]:
        (st.error if outcome["decision"]["refer"] else st.info)(lang.rendered(outcome["decision"]["text"]))


def report_download(run, split: str) -> None:
    """Results page: build the run's HTML report on request, then offer it for download."""
    from lesion_core.evaluation import report

    key = f"res_report_{run.id}_{split}"
    if st.button(_("Build the HTML report"), key="res_report_build",
                 help=_("Data, recipe, AUCs with 95% intervals, operating points, calibration, confusion, "
                      "lesion focus, worst errors with heatmaps, intended use and limitations")):
        with common.user_errors(), st.spinner(_("Building the report...")):
            st.session_state[key] = report.build_report(run.path, split)
    if key in st.session_state:
        st.download_button(_("Download report.html"), st.session_state[key], file_name=f"{run.id}-report.html",
                           mime="text/html", key="res_report_download", on_click="ignore")
