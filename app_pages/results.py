"""Results: compare runs, then one run's confusion matrices, precision/recall, ROC and downloads."""

import json

import streamlit as st

from lesion_core import plots, runs
from app_pages import common, lang
from app_pages.lang import _, fig, num

st.title(_("Results"))

listed = common.all_runs()
if not listed:
    st.info(_("No runs yet: launch one on the **Train** page."))
    st.page_link("app_pages/train.py", label=_("Train"), icon=":material/model_training:")
    st.stop()

st.subheader(_("Runs"))
st.dataframe(common.runs_frame(listed), hide_index=True, width="stretch",
             column_config={_("best val mean AUC"): st.column_config.NumberColumn(format="%.3f"),
                            _("test mean AUC"): st.column_config.NumberColumn(format="%.3f")})

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
message = run.status.get("message", "").removeprefix(run.state + ": ")
st.caption(_("{state}: {message} · pick another run in the sidebar", state=_(run.state), message=message))
split = st.radio(_("Evaluated on"), ["test", "val"], horizontal=True, format_func=lang.options(), key="keep_res_split",
                 help=_("The best weights' predictions on the held-out split, written when the run finished"))
result = runs.read_metrics(run.path, split)
if result is None:
    st.info(_("No {split} metrics yet: they are written when the run finishes.", split=_(split)))
else:
    names = result["class_names"]
    accuracy, mean_auc, count = st.columns(3)
    accuracy.metric(_("Accuracy"), num(result["accuracy"]))
    mean_auc.metric(_("Mean AUC (melanoma, keratosis)") if len(names) == 3 else _("Mean AUC"), num(result["mean_auc"]))
    count.metric(_("Images"), result["n"])
    raw, pct = st.columns(2)
    raw.plotly_chart(fig(plots.confusion_heatmap(result["confusion"], names)), key="res_cm")
    pct.plotly_chart(fig(plots.confusion_heatmap(result["confusion_pct"], names, percent=True)), key="res_cm_pct")
    bars, roc = st.columns(2)
    bars.plotly_chart(fig(plots.precision_recall_bars(result["precision"], result["recall"], names)), key="res_pr")
    roc.plotly_chart(fig(plots.roc_curves(result["roc"], result["auc"], names)), key="res_roc")

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

st.subheader(_("Export"))
st.caption(_("The best model with its resizing and normalisation inside, for use without Lesion Lab: it takes "
           "uint8 RGB images shaped (N, H, W, 3) and returns class probabilities. Checked against PyTorch "
           "on real images before it is offered."))
export_format = st.radio(_("Format"), ["onnx", "torchscript"], horizontal=True, key="keep_res_export_format",
                         format_func={"onnx": "ONNX", "torchscript": "TorchScript"}.get)
if not (run.path / "best.pt").is_file():
    st.caption(_("best.pt: not written yet"))
elif st.button(_("Export and check"), key="res_export", icon=":material/deployed_code:"):
    with common.user_errors(), st.spinner(_("Exporting and checking on real images...")):
        st.session_state["res_exported"] = (run.id, export_format, *common.export_bytes(run.path, export_format))
exported = st.session_state.get("res_exported")
if exported and exported[:2] == (run.id, export_format):
    model_bytes, sidecar = exported[2:]
    suffix = {"onnx": ".onnx", "torchscript": ".pt"}[export_format]
    check = sidecar["verification"]
    st.success(_("Checked on {n} real images: probabilities within {diff} of PyTorch ({runtime}).", n=check["images"],
                 diff=f"{check['max_abs_diff']:.1e}", runtime=check["runtime"]), icon=":material/check_circle:")
    model_col, sidecar_col = st.columns(2)
    model_col.download_button(_("Download {name}", name=f"model{suffix}"), model_bytes, file_name=f"{run.id}{suffix}",
                              mime="application/octet-stream", key="res_dl_export", on_click="ignore")
    sidecar_col.download_button(_("Download {name}", name=f"model{suffix}.json"), json.dumps(sidecar, indent=2),
                                file_name=f"{run.id}{suffix}.json", mime="application/json",
                                key="res_dl_export_json", on_click="ignore")
with st.expander(_("Config")):
    st.code(json.dumps(run.config, indent=2), language="json")
