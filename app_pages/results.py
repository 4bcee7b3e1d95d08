"""Results: compare runs, then one run's confusion matrices, precision/recall, ROC and downloads."""

import json
import math

import streamlit as st

from app_pages import cache, common, experiments, lang, review_views
from app_pages.lang import _, fig, md, num
from lesion_core import export, metrics, plots, runs
from lesion_core.evaluation import saved

st.title(_("Results"))
# metrics.HEADLINE_METRICS's names, here so that the catalogue has them.
METRIC_NAMES = {"isic2017_mean_auc": _("ISIC 2017 mean AUC (melanoma, keratosis)"), "macro_auc": _("Macro AUC"),
                "balanced_accuracy": _("Balanced accuracy"), "mean_auc": _("Mean AUC"), "accuracy": _("Accuracy")}

listed = common.all_runs()
if not listed:
    st.info(_("No runs yet: launch one on the **Train** page."))
    st.page_link("app_pages/train.py", label=_("Train"), icon=":material/model_training:")
    st.stop()

st.subheader(_("Runs"))
table, numbers = common.runs_table_numbers(common.runs_frame(listed))
st.dataframe(table, hide_index=True, width="stretch", column_config=numbers)

experiments.sweeps(listed)

ids = [r.id for r in listed]
common.default("keep_res_compare", ids[:2])
st.session_state["keep_res_compare"] = [i for i in st.session_state["keep_res_compare"] if i in ids]
compare = st.multiselect(_("Compare runs"), ids, key="keep_res_compare")
if compare:
    histories = {r.id: runs.read_history(r.path) for r in listed if r.id in compare}
    auc, loss = st.columns(2)
    auc.plotly_chart(fig(plots.overlay_curves(histories, "val", "mean_auc", _("Validation mean AUC"))), key="res_cmp_auc")
    loss.plotly_chart(fig(plots.overlay_curves(histories, "val", "loss", _("Validation loss"))), key="res_cmp_loss")

run = common.selected_run()
st.subheader(_("Run {run}", run=run.id))
message = md(lang.rendered(run.status.get("message", "").removeprefix(run.state + ": ")))
st.caption(_("{run}: {message} · pick another run in the sidebar", run=common.run_caption(run), message=message))
split = st.radio(_("Evaluated on"), ["test", "val"], horizontal=True, format_func=lang.options(), key="keep_res_split",
                 help=_("The best weights' predictions on the held-out split, written when the run finished"))
result = runs.read_metrics(run.path, split)
damaged = [p for p in run.damage if p.startswith(f"metrics_{split}.json")]
if damaged:
    st.error(_("Damaged: {files}", files=md("; ".join(lang.rendered(p) for p in damaged))), icon=":material/error:")
if result is None and saved.can_evaluate(run):
    best_epoch = (run.best or {}).get("epoch", "?")
    st.info(_("Run {run} is {state} before its end, but its best weights (epoch {epoch}) "
              "can be scored on its validation and test images.", run=run.id, state=_(run.state), epoch=best_epoch))
    if st.button(_("Evaluate the best weights"), key="res_evaluate", icon=":material/fact_check:"):
        with common.user_errors(), st.spinner(_("Evaluating {run} on val and test...", run=run.id)):
            saved.evaluate_best(run.path)
            st.rerun()
elif result is None:
    st.info(_("No {split} metrics yet: they are written when the run finishes.", split=_(split)))
else:
    names = result["class_names"]
    # The headline (it picked the best epoch) first; runs before headlines were ranked by mean AUC.
    headline = result.get("headline") or "mean_auc"
    keys = [headline] + [k for k in ("macro_auc", "balanced_accuracy", "accuracy") if k != headline and k in result]
    # the headline's name is long ("ISIC 2017 mean AUC (melanoma, keratosis) (headline)"): room to show it whole
    columns = st.columns([3] + [1] * len(keys))
    for column, key in zip(columns, keys):
        label = METRIC_NAMES.get(key, metrics.HEADLINE_METRICS.get(key, key))
        label = _("{metric} (headline)", metric=label) if key == headline else label
        column.metric(label, num(result.get(key)))
    columns[-1].metric(_("Images"), result["n"])
    if result.get("undefined_auc"):
        st.warning(_("Mean AUC undefined: the {split} split has no images (or only images) of {classes}, "
                     "so their AUC cannot be computed.", split=_(split),
                     classes=", ".join(lang.classes(map(str, result["undefined_auc"])))))
    raw, pct = st.columns(2)
    st.caption(_("Confusion matrices: each image counted under its most probable class (argmax), which a "
                 "temperature does not change; the operating point below flags p(class) >= a threshold instead."))
    raw.plotly_chart(fig(plots.confusion_heatmap(result["confusion"], names)), key="res_cm")
    pct.plotly_chart(fig(plots.confusion_heatmap(result["confusion_pct"], names, percent=True)), key="res_cm_pct")
    bars, roc = st.columns(2)
    bars.plotly_chart(fig(plots.precision_recall_bars(result["precision"], result["recall"], names)), key="res_pr")
    roc.plotly_chart(fig(plots.roc_curves(result["roc"], result["auc"], names)), key="res_roc")
    subgroup_rows = cache.subgroup_table(run.path, split)
    if subgroup_rows:
        st.subheader(_("Subgroups"))
        st.caption(_("Macro AUC (for two classes: the positive class's AUC) per sex, age band and anatomic "
                   "site, with a 95% bootstrap interval; small groups have wide intervals."))
        subgroup_rows, numbers = lang.numbers_table(subgroup_rows, dict.fromkeys(
            ("AUC", "AUC 95% low", "AUC 95% high", "accuracy"), 3))
        st.dataframe(subgroup_rows, hide_index=True, width="stretch", key="res_subgroups", column_config=numbers)
    experiments.intervals(run.path, split, key="res_intervals")
    experiments.robustness(run, split)
review_views.results_review(run, split)

st.subheader(_("Downloads"))
files = [(f"predictions_{split}.csv", "text/csv"), ("config.json", "application/json"),
         ("best.pt", "application/octet-stream")]
for column, (name, mime) in zip(st.columns(len(files)), files):
    path = run.path / name
    if path.is_file():
        # Deferred: the file is read only when clicked (weights can be hundreds of MB).
        column.download_button(_("Download {name}", name=name), path.read_bytes, file_name=f"{run.id}-{name}", mime=mime,
                               key=f"res_dl_{name}", on_click="ignore")
    else:
        column.caption(_("{name}: not written yet", name=name))

review_views.report_download(run, split)

st.subheader(_("Export"))
st.caption(_("The best model with its resizing and normalisation inside, for use without Lesion Lab: it takes "
           "uint8 RGB images shaped (N, H, W, 3) and returns class probabilities. Checked on real images "
           "against the PyTorch model and against predict before it is offered."))
export_format = st.radio(_("Format"), ["onnx", "torchscript"], horizontal=True, key="keep_res_export_format",
                         format_func={"onnx": "ONNX", "torchscript": "TorchScript"}.get)
if export.takes_mask(run.config):
    st.caption(_("This run was trained on lesion crops: the exported model also takes each image's lesion mask, "
                 "uint8 shaped (N, H, W), and crops the image to it inside, as the run did."))
if not (run.path / "best.pt").is_file():
    st.caption(_("best.pt: not written yet"))
elif (unexportable := export.export_problem(run.config)) is not None:  # not offered where it would fail
    st.info(_("This run cannot be exported: {why}", why=lang.rendered(unexportable)))
elif st.button(_("Export and check"), key="res_export", icon=":material/deployed_code:"):
    with common.user_errors(), st.spinner(_("Exporting and checking on real images...")):
        st.session_state["res_exported"] = (run.id, export_format, *cache.export_bytes(run.path, export_format))
exported = st.session_state.get("res_exported")
if exported and exported[:2] == (run.id, export_format):
    model_bytes, sidecar = exported[2:]
    suffix = {"onnx": ".onnx", "torchscript": ".pt"}[export_format]
    check = sidecar["verification"]
    st.success(_("Checked on {n} real images: probabilities within {diff} of PyTorch ({runtime}) and within "
                 "{predict} of predict.", n=check["images"], diff=f"{check['max_abs_diff']:.1e}",
                 runtime=check["runtime"], predict=f"{check.get('max_abs_diff_vs_predict', math.nan):.1e}"),
               icon=":material/check_circle:")
    if sidecar.get("metadata_prior"):
        st.info(_("Metadata prior {what}", what=lang.rendered(sidecar["metadata_prior"])))
    model_col, sidecar_col = st.columns(2)
    model_col.download_button(_("Download {name}", name=f"model{suffix}"), model_bytes, file_name=f"{run.id}{suffix}",
                              mime="application/octet-stream", key="res_dl_export", on_click="ignore")
    sidecar_col.download_button(_("Download {name}", name=f"model{suffix}.json"), json.dumps(sidecar, indent=2),
                                file_name=f"{run.id}{suffix}.json", mime="application/json",
                                key="res_dl_export_json", on_click="ignore")
with st.expander(_("Config")):
    st.code(json.dumps(run.config, indent=2), language="json")
