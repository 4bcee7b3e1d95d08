"""Compare: two or more runs, the settings that differ, their curves, and a paired verdict."""

import streamlit as st

from app_pages import cache, common, lang
from app_pages.lang import _, cls, fig, rendered
from lesion_core import plots, runs
from lesion_core.evaluation import bootstrap, compare

st.title(_("Compare runs"))
st.caption(_("Did the change help? Runs scored on the same images are compared image by image "
           "(a paired bootstrap of B - A); the first run chosen is A, the baseline: at first the older of "
           "the two newest runs, B the newer."))

listed = [r for r in common.all_runs() if (r.path / "predictions_test.csv").is_file()
          or (r.path / "predictions_val.csv").is_file()]
if len(listed) < 2:
    st.info(_("Comparing needs two finished runs: launch them on the **Train** page."))
    st.page_link("app_pages/train.py", label=_("Train"), icon=":material/model_training:")
    st.stop()

ids = [r.id for r in listed]  # newest first
# A the baseline (the older of the two newest runs), B the change (the newer); ids made in the
# same second do not sort by time, so their start times decide
common.default("keep_cmp_runs", [r.id for r in sorted(listed[:2], key=lambda r: (r.started or 0, r.id))])
st.session_state["keep_cmp_runs"] = [i for i in st.session_state["keep_cmp_runs"] if i in ids]


def swap() -> None:
    """Callback: B becomes A and A becomes B."""
    runs_ = st.session_state["keep_cmp_runs"]
    st.session_state["keep_cmp_runs"] = [runs_[1], runs_[0], *runs_[2:]]


runs_col, swap_col = st.columns([6, 1], vertical_alignment="bottom")
chosen = runs_col.multiselect(_("Runs (the first is A)"), ids, key="keep_cmp_runs", max_selections=6)
swap_col.button(_("Swap A and B"), key="cmp_swap", icon=":material/swap_horiz:", on_click=swap,
                disabled=len(chosen) < 2)
split = st.radio(_("Scored on"), ["test", "val"], horizontal=True, format_func=lang.options(), key="keep_cmp_split")
if len(chosen) < 2:
    st.info(_("Choose at least two runs."))
    st.stop()
by_id = {r.id: r for r in listed}


def settings_diff() -> None:
    """Only the settings that differ between the chosen runs."""
    st.subheader(_("Settings that differ"))
    rows = compare.config_diff({i: by_id[i].config for i in chosen})
    if rows:
        st.dataframe([{_(k): v for k, v in row.items()} for row in rows], hide_index=True, width="stretch",
                     key="cmp_diff")
    else:
        st.caption(_("The runs have the same settings (seed included): any difference is noise of the machine."))


def curves() -> None:
    """Validation curves of every chosen run, overlaid."""
    histories = {i: runs.read_history(by_id[i].path) for i in chosen}
    auc, loss = st.columns(2)
    auc.plotly_chart(fig(plots.overlay_curves(histories, "val", "mean_auc", _("Validation mean AUC"))), key="cmp_auc")
    loss.plotly_chart(fig(plots.overlay_curves(histories, "val", "loss", _("Validation loss"))), key="cmp_loss")


def gallery(run_a, result: dict, key: str) -> None:
    """The images one run gets right and the other wrong (first 12)."""
    rows = result["disagreements"]
    with st.expander(_("{n} images one run gets right and the other wrong", n=len(rows))):
        if not rows:
            st.caption(_("None: both runs are right and wrong on the same images."))
            return
        table = [{_(k): cls(v) if k in ("label", "pred_a", "pred_b") else v for k, v in row.items()} for row in rows]
        st.dataframe(table, hide_index=True, width="stretch", key=f"{key}_table")
        try:
            records = cache.run_records(run_a.path)
        except Exception as exc:  # a moved dataset: the table still says which images
            st.caption(_("Images not shown: {error}", error=exc))
            return
        shown = [r for r in rows if r["id"] in records][:12]
        columns = st.columns(6)
        for n, row in enumerate(shown):
            with common.user_errors():
                image = common.read_sample(records[row["id"]], max_side=256)["image"]
                columns[n % 6].image(image, caption=f"{row['id']}: {cls(row['label'])}; A {cls(row['pred_a'])}, "
                                                    f"B {cls(row['pred_b'])}")


def _metric_name(key: str) -> str:
    """A compare_runs metric key as Results names it: "mean AUC", "AUC melanoma", "accuracy"."""
    if key.startswith("auc_"):
        return f"AUC {cls(key.removeprefix('auc_'))}"
    return _({"mean_auc": "mean AUC"}.get(key, key.replace("_", " ")))


def paired(a_id: str, b_id: str) -> None:
    """B - A for every metric with its interval, the verdict, the disagreements."""
    st.subheader(_("B = {b} vs A = {a}", b=b_id, a=a_id))
    with common.user_errors():
        result = compare.compare_runs(by_id[a_id].path, by_id[b_id].path, split)
        rows = [{_("metric"): _metric_name(name), "A": row["a"], "B": row["b"],
                 _("B - A [95% CI]"): rendered(bootstrap.format_delta(row))}
                for name, row in result["metrics"].items()]
        rows, numbers = lang.numbers_table(rows, {"A": 3, "B": 3})
        st.dataframe(rows, hide_index=True, width="stretch", key=f"cmp_tab_{b_id}", column_config=numbers)
        text = compare.verdict_text(result)
        show = {"a": st.success, "b": st.success}.get(result["verdict"], st.info)
        show(_("Verdict (mean AUC): {text}", text=rendered(text)))
        if result["same_images"]:
            gallery(by_id[a_id], result, key=f"cmp_gal_{b_id}")


settings_diff()
curves()
for other in chosen[1:]:
    paired(chosen[0], other)
