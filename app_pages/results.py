"""Results: compare runs, then one run's confusion matrices, precision/recall, ROC and downloads."""

import json

import streamlit as st

from lesion_core import metrics, plots, runs
from lesion_core.evaluation import saved
from app_pages import common, experiments, review_views

st.title("Results")

listed = common.all_runs()
if not listed:
    st.info("No runs yet: launch one on the **Train** page.")
    st.page_link("app_pages/train.py", label="Train", icon=":material/model_training:")
    st.stop()

st.subheader("Runs")
st.dataframe(common.runs_frame(listed), hide_index=True, width="stretch",
             column_config={"best val": st.column_config.NumberColumn(format="%.3f"),
                            "test": st.column_config.NumberColumn(format="%.3f")})

experiments.sweeps(listed)

ids = [r.id for r in listed]
common.default("keep_res_compare", ids[:2])
st.session_state["keep_res_compare"] = [i for i in st.session_state["keep_res_compare"] if i in ids]
compare = st.multiselect("Compare runs", ids, key="keep_res_compare")
if compare:
    histories = {r.id: runs.read_history(r.path) for r in listed if r.id in compare}
    auc, loss = st.columns(2)
    auc.plotly_chart(plots.overlay_curves(histories, "val", "mean_auc", "Validation mean AUC"), key="res_cmp_auc")
    loss.plotly_chart(plots.overlay_curves(histories, "val", "loss", "Validation loss"), key="res_cmp_loss")

run = common.selected_run()
st.subheader(f"Run {run.id}")
message = run.status.get("message", "").removeprefix(run.state + ": ")
st.caption(f"{common.run_caption(run)}: {message} · pick another run in the sidebar")
split = st.radio("Evaluated on", ["test", "val"], horizontal=True, key="keep_res_split",
                 help="The best weights' predictions on the held-out split, written when the run finished")
result = runs.read_metrics(run.path, split)
damaged = [p for p in run.damage if p.startswith(f"metrics_{split}.json")]
if damaged:
    st.error(f"Damaged: {'; '.join(damaged)}", icon=":material/error:")
if result is None and saved.can_evaluate(run):
    best_epoch = (run.best or {}).get("epoch", "?")
    st.info(f"Run {run.id} is {run.state} before its end, but its best weights (epoch {best_epoch}) "
            "can be scored on its validation and test images.")
    if st.button("Evaluate the best weights", key="res_evaluate", icon=":material/fact_check:"):
        with common.user_errors(), st.spinner(f"Evaluating {run.id} on val and test..."):
            saved.evaluate_best(run.path)
            st.rerun()
elif result is None:
    st.info(f"No {split} metrics yet: they are written when the run finishes.")
else:
    names = result["class_names"]
    # The headline (it picked the best epoch) first; runs before headlines were ranked by mean AUC.
    headline = result.get("headline") or "mean_auc"
    keys = [headline] + [k for k in ("macro_auc", "balanced_accuracy", "accuracy") if k != headline and k in result]
    columns = st.columns(len(keys) + 1)
    for column, key in zip(columns, keys):
        label = metrics.HEADLINE_METRICS.get(key, key) + (" (headline)" if key == headline else "")
        column.metric(label, "n/a" if result.get(key) is None else f"{result[key]:.3f}")
    columns[-1].metric("Images", result["n"])
    if result.get("undefined_auc"):
        st.warning(f"Mean AUC undefined: the {split} split has no images (or only images) of "
                   f"{', '.join(map(str, result['undefined_auc']))}, so their AUC cannot be computed.")
    raw, pct = st.columns(2)
    raw.plotly_chart(plots.confusion_heatmap(result["confusion"], names), key="res_cm")
    pct.plotly_chart(plots.confusion_heatmap(result["confusion_pct"], names, percent=True), key="res_cm_pct")
    bars, roc = st.columns(2)
    bars.plotly_chart(plots.precision_recall_bars(result["precision"], result["recall"], names), key="res_pr")
    roc.plotly_chart(plots.roc_curves(result["roc"], result["auc"], names), key="res_roc")
    subgroup_rows = common.subgroup_table(run.path, split)
    if subgroup_rows:
        st.subheader("Subgroups")
        st.caption("Macro AUC (for two classes: the positive class's AUC) per sex, age band and anatomic "
                   "site, with a 95% bootstrap interval; small groups have wide intervals.")
        st.dataframe(subgroup_rows, hide_index=True, width="stretch", key="res_subgroups")
    experiments.intervals(run.path, split, key="res_intervals")
    experiments.robustness(run, split)
review_views.results_review(run, split)

st.subheader("Downloads")
files = [(f"predictions_{split}.csv", "text/csv"), ("config.json", "application/json"),
         ("best.pt", "application/octet-stream")]
for column, (name, mime) in zip(st.columns(len(files)), files):
    path = run.path / name
    if path.is_file():
        # Deferred: the file is read only when clicked (weights can be hundreds of MB).
        column.download_button(f"Download {name}", path.read_bytes, file_name=f"{run.id}-{name}", mime=mime,
                               key=f"res_dl_{name}", on_click="ignore")
    else:
        column.caption(f"{name}: not written yet")
review_views.report_download(run, split)
with st.expander("Config"):
    st.code(json.dumps(run.config, indent=2), language="json")
