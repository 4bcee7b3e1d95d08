"""Page sections for honest experiments (intervals, robustness, sweeps), drawn by several pages.

Each function draws one self-contained section, so a page adds it with one call.
"""

from __future__ import annotations

import json

import streamlit as st

from app_pages import lang
from app_pages.lang import _, cls, fig, rendered
from lesion_core import plots
from lesion_core.errors import DataError
from lesion_core.evaluation import bootstrap


def interval(found) -> str:
    """A value with its 95% interval as the page's language writes numbers ("0,859 [0,799; 0,909]")."""
    return rendered(bootstrap.format_interval(found))


def intervals(run_dir, split: str, key: str) -> None:
    """The split's mean AUC, per-class AUC, accuracy and balanced accuracy with 95% intervals,
    and a warning per class too small for its AUC to mean much."""
    try:
        found = bootstrap.run_intervals(run_dir, split)
    except DataError as exc:  # predictions_<split>.csv damaged: named, the rest of the page stands
        st.warning(_("No 95% intervals: {error}", error=rendered(str(exc))), icon=":material/warning:")
        return
    if not found:
        return
    fmt = interval
    metric, value = _("metric"), _("value [95% CI]")
    rows = [{metric: _("mean AUC"), value: fmt(found.get("mean_auc"))},
            {metric: _("accuracy"), value: fmt(found.get("accuracy"))},
            {metric: _("balanced accuracy"), value: fmt(found.get("balanced_accuracy"))}]
    rows += [{metric: f"AUC {cls(name)}", value: fmt(row)} for name, row in (found.get("auc") or {}).items()]
    st.dataframe(rows, hide_index=True, key=f"{key}_table")
    n_resamples = found.get("n_resamples", bootstrap.N_RESAMPLES)
    st.caption(_("95% intervals: stratified bootstrap of the {split} images ({n} resamples, seeded). "
                 "Two runs whose intervals overlap may still differ: compare them on the **Compare** page.",
                 split=_(split), n=n_resamples))
    warnings = bootstrap.small_class_warnings(found, split)
    if warnings:  # one box, a line a class, not a box each
        st.warning("  \n".join(rendered(w) for w in warnings), icon=":material/warning:")


def final_intervals(run) -> None:
    """A finished run's val and test headline numbers with intervals (Train page)."""
    lines = []
    for split in ("val", "test"):
        found = bootstrap.run_intervals(run.path, split, compute=False)
        if found:
            lines.append(_("**{split}**: mean AUC {auc}, accuracy {accuracy}, balanced accuracy {balanced} (n {n})",
                           split=_(split), auc=interval(found.get("mean_auc")),
                           accuracy=interval(found.get("accuracy")),
                           balanced=interval(found.get("balanced_accuracy")),
                           n=found["mean_auc"].get("n")))
            lines += [f":warning: {rendered(w)}" for w in bootstrap.small_class_warnings(found, split)]
    if lines:
        st.markdown("  \n".join(lines))


def skin_tones(dataset) -> None:
    """Dataset page: the skin-tone (ITA) distribution per split and class, on request."""
    import pandas as pd

    from lesion_core.data import skin

    st.subheader(_("Skin tones"))
    st.caption(_("Individual Typology Angle (ITA = atan((L* - 50) / b*)) of the skin outside each lesion "
               "mask, in six groups from very light (> 55°) to dark (< -30°). A model trained on one "
               "group may not carry over to another: see a run's robustness report on **Results**."))
    stored = st.session_state.get("ds_skin_tones")
    if stored is None or stored["root"] != str(dataset.root):
        if not st.button(_("Estimate skin tones"), key="ds_skin_button",
                         help=_("Reads the {n} images at small size: a few seconds per 100", n=len(dataset.records))):
            return
        with st.spinner(_("Estimating skin tones...")):
            rows = skin.dataset_tones(dataset.records)
        stored = {"root": str(dataset.root), "table": skin.distribution(rows, dataset.class_names)}
        st.session_state["ds_skin_tones"] = stored
    groups = [*skin.GROUP_NAMES, skin.NO_MASK]  # very light to dark, as the chart's axis runs
    table = pd.DataFrame([{_("split"): _(split), _("class"): cls(name)} | {rendered(g): counts.get(g, 0) for g in groups}
                          for split, per_class in stored["table"].items() for name, counts in per_class.items()])
    st.dataframe(table, hide_index=True, width="stretch", key="ds_skin_table")
    totals = {name: {g: sum(per_class.get(name, {}).get(g, 0) for per_class in stored["table"].values()) for g in groups}
              for name in dataset.class_names}
    st.plotly_chart(fig(plots.skin_tone_bars(totals, groups, list(dataset.class_names))), key="ds_skin_chart")


def robustness(run, split: str) -> None:
    """Results page: the run's robustness report (computed on request, kept in the run folder)."""
    import pandas as pd

    from app_pages import common
    from lesion_core.evaluation import robustness as engine

    st.subheader(_("Robustness"))
    st.caption(_("The split re-scored with the skin outside the lesion moved to one tone per skin-tone (ITA) "
               "group, its texture kept (as RandomChangeSkin does), and rotated, darker, brighter, flatter, "
               "blurred. A model that leans on skin colour loses AUC on some tones."))
    report = engine.read_report(run.path, split)
    if st.button(_("Compute the robustness report") if report is None else _("Recompute"), key="res_robust_button",
                 disabled=not (run.path / "best.pt").is_file(),
                 help=_("Scores the split 12 times with the best weights; a minute or more on a CPU")):
        with common.user_errors(), st.spinner(_("Scoring the split under every shift...")):
            report = engine.robustness_report(run.path, split)
            engine.save_report(run.path, report)
    if report is None:
        return
    if report.get("skin_shift") != engine.SKIN_SHIFT:
        st.info(_("This report's skin conditions were computed with the earlier flat repaint (one colour, no "
                  "texture); Recompute to score them with the skin's texture kept."), icon=":material/info:")
    fmt = interval
    st.plotly_chart(fig(engine.figure(report)), key="res_robust_chart")
    rows = [{"condition": rendered(r.get("name")), "images": r.get("n"),
             "mean AUC [95% CI]": fmt({"value": r.get("mean_auc"), "ci_low": r.get("ci_low"), "ci_high": r.get("ci_high")}),
             "change [95% CI]": rendered(bootstrap.format_delta({"delta": r.get("delta"), "ci_low": r.get("delta_ci_low"),
                                                               "ci_high": r.get("delta_ci_high")}))}
            for r in report["conditions"]]
    st.dataframe(pd.DataFrame(rows).rename(columns=_), hide_index=True, width="stretch", key="res_robust_table")
    skipped = report.get("skipped_no_mask") or 0
    st.caption(_("Unshifted: mean AUC {auc} on {n} images", auc=fmt(report["baseline"].get("mean_auc")),
                 n=report.get("n"))
               + (_("; {n} images without a mask are left out of the skin conditions", n=skipped) if skipped else ""))
    groups = [{"skin tone of the image": rendered(g.get("ita_group")), "images": g.get("n"),
               "mean AUC [95% CI]": fmt({"value": g.get("mean_auc"), "ci_low": g.get("ci_low"),
                                         "ci_high": g.get("ci_high")}),
               "note": rendered(g.get("warning") or "")} for g in report.get("groups") or [] if isinstance(g, dict)]
    if groups:
        st.markdown(_("**The unshifted images, by their own skin tone**"))
        st.dataframe(pd.DataFrame(groups).rename(columns=_), hide_index=True, width="stretch", key="res_robust_groups")


def sweep_launcher(config: dict) -> None:
    """Train page: start a sweep over a grid of settings, with the page's settings as its base."""
    from app_pages import common
    from lesion_core import safejson, sweep
    from lesion_core.errors import TrainingError
    from lesion_core.i18n import N_

    with st.expander(_("Sweep: train every combination of a few settings")):
        st.caption(_('A JSON object from setting to the values to try, e.g. {"optim.lr": [0.001, 0.0003], '
                   '"augment": ["default_train", "notebook_train"]}. The other settings are the ones above; '
                   "the runs train one after another, and the Results page groups them."))
        common.default("keep_tr_sweep_grid", '{"optim.lr": [0.001, 0.0003]}')
        text = st.text_area(_("Grid"), key="keep_tr_sweep_grid", height=80)
        common.default("keep_tr_sweep_repeats", 1)
        repeats = st.number_input(_("Repeats (seeds)"), min_value=1, max_value=20, key="keep_tr_sweep_repeats",
                                  help=_("Each setting trained this many times with seeds counting up: "
                                       "shows how much the seed alone moves the result"))
        try:
            grid = safejson.loads(text)
        except safejson.Damaged as exc:
            grid, problem = None, exc
        if isinstance(grid, dict) and all(isinstance(v, list) for v in grid.values()):
            st.caption(_("{n} runs", n=f"{sweep.count_runs(grid, int(repeats)):,}"))  # counted before anything starts
        if st.button(_("Launch sweep"), key="tr_sweep_launch", icon=":material/grid_on:"):
            with common.user_errors():
                if grid is None:
                    raise TrainingError(N_("the grid is not valid JSON: {error}").format(error=problem))
                spec = {"base": config, "grid": grid, "repeats": int(repeats)}
                sid = sweep.launch_sweep(spec, common.runs_root())
                started = _("Sweep {sweep} started: {n} runs, one after another.", sweep=sid, n=len(sweep.expand(spec)))
                with st.spinner(_("Waiting for the sweep's first run...")):
                    first = _first_run_of(sid, common.runs_root())
                if first is None:  # a slow start: the run appears on the next visit
                    st.success(started + " " + _("Its first run is slow to start; it appears here once it has."))
                else:  # followed live at once, as a run started with Launch is
                    st.session_state["tr_settings_note"] = started
                    common.select_run_and_rerun(first)


SWEEP_START_S = 60  # how long the page waits for a sweep's first run folder


def _first_run_of(sweep_id: str, runs_dir, timeout: float = SWEEP_START_S) -> str | None:
    """The id of the sweep's first run folder once its process has made it, or None."""
    import time

    from lesion_core import runs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in runs.list_runs(runs_dir):
            tag = run.config.get("sweep")
            if isinstance(tag, dict) and tag.get("id") == sweep_id:
                return run.id
        time.sleep(0.5)
    return None


def sweeps(listed) -> None:
    """Results page: a sweep's runs in one table, the best by validation mean AUC marked, with
    those not distinguishable from it (paired bootstrap on the same validation images)."""
    import pandas as pd

    from lesion_core.evaluation import compare

    tagged = [r for r in listed if isinstance(r.config.get("sweep"), dict) and isinstance(r.config["sweep"].get("id"), str)]
    if not tagged:
        return
    st.subheader(_("Sweeps"))
    ids = sorted({r.config["sweep"]["id"] for r in tagged})
    chosen = st.selectbox(_("Sweep"), ids, key="keep_res_sweep")
    members = [r for r in tagged if r.config["sweep"]["id"] == chosen]
    rows = []
    for run in members:
        tag = run.config["sweep"]
        val = bootstrap.run_intervals(run.path, "val", compute=False) or {}
        test = bootstrap.run_intervals(run.path, "test", compute=False) or {}
        value = (val.get("mean_auc") or {}).get("value")
        rows.append({"run": run.id, "state": _(run.state), "setting": json.dumps(tag.get("point")),
                     "seed": run.config.get("seed"), "val mean AUC": value,
                     "val [95% CI]": interval(val.get("mean_auc")),
                     "test mean AUC [95% CI]": interval(test.get("mean_auc"))})
    frame = pd.DataFrame(rows)
    scored = frame.dropna(subset=["val mean AUC"])
    if not scored.empty:
        best = scored.loc[scored["val mean AUC"].idxmax(), "run"]
        by_id = {r.id: r for r in members}

        def mark(run_id):
            if run_id == best:
                return _("best")
            if run_id not in set(scored["run"]):
                return ""
            result = compare.compare_runs(by_id[best].path, by_id[run_id].path, "val", n_resamples=500)
            return _("not distinguishable") if result["verdict"] == "none" else _("worse")

        frame["vs best (val)"] = [mark(r) for r in frame["run"]]
    table, numbers = lang.numbers_table(frame.rename(columns=_), {_("val mean AUC"): 3})
    st.dataframe(table, hide_index=True, width="stretch", key="res_sweep_table", column_config=numbers)
    spread = scored.groupby("setting")["val mean AUC"].agg(["count", "mean", "std", "min", "max"]) \
        if not scored.empty else None
    if spread is not None and (spread["count"] > 1).any():
        st.markdown(_("**Seed-to-seed spread** (the same setting, different seeds): differences smaller than "
                    "this are luck of the draw"))
        spread, numbers = lang.numbers_table(spread.reset_index(), dict.fromkeys(("mean", "std", "min", "max"), 3))
        st.dataframe(spread, hide_index=True, width="stretch", key="res_sweep_spread", column_config=numbers)
