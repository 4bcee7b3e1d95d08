"""Reader study: a named reader reads a split's images without the label or the model, then again
with the model's output; every reader's point on the model's ROC."""

import time

import streamlit as st

from app_pages import cache, common, lang
from app_pages.lang import _, cls, fig, num, rendered
from lesion_core import plots, transforms
from lesion_core.errors import LesionLabError, describe_os_error
from lesion_core.evaluation import figures, readers

st.title(_("Reader study"))
st.caption(_("Read the images as you would in clinic: no label, no model. Then, if you like, read them again "
             "with the model's output. Your answers are kept in the run folder; you can stop at any time and "
             "resume where you stopped."))

run = common.selected_run()
if run is None:
    st.info(_("No runs yet: launch one on the **Train** page."))
    st.stop()
st.caption(_("{run} · pick another run in the sidebar", run=common.run_caption(run)))
split = st.radio(_("Split"), ["test", "val"], horizontal=True, format_func=lang.options(), key="keep_read_split")
model, damaged = None, True
with common.user_errors():  # a damaged predictions file is named, not taken for a missing one
    model, damaged = readers.model_predictions(run.path, split), False
if model is None:
    if not damaged:
        st.info(_("No {split} predictions yet: they are written when the run finishes.", split=_(split)))
    st.stop()
ids, labels, probs, names = model

# The name survives a reload through the address (?reader=<id>), like the other choices.
if "keep_reader_name" not in st.session_state and st.query_params.get("reader"):
    st.session_state["keep_reader_name"] = st.query_params["reader"]
name = st.text_input(_("Reader"), key="keep_reader_name", max_chars=60,
                     help=_("Your name or initials: each reader has their own answers and image order"))
reader = None
if name.strip():
    with common.user_errors():
        reader = readers.reader_id(name)
if reader:
    st.query_params["reader"] = reader
elif "reader" in st.query_params:
    del st.query_params["reader"]


def answer_widgets(position: int, pass_no: int) -> tuple[str, str | None]:
    """The optional confidence and management choice for the image at position (their keys)."""
    confidence, management = f"read_conf_{pass_no}_{position}", None
    st.segmented_control(_("Confidence (optional)"), list(readers.CONFIDENCE), key=confidence,
                         help=_("1: a guess · 5: certain"))
    if readers.asks_management(names):
        management = f"read_mgmt_{pass_no}_{position}"
        st.segmented_control(_("Management (optional)"), list(readers.MANAGEMENT), format_func=lang.options(),
                             key=management)
    return confidence, management


ERROR = "read_error"  # what a callback could not do, shown on the run it triggers


def answer(reader: str, pass_no: int, order: list, done: set, position: int, key: str, shown_key: str,
           class_name: str, confidence_key: str, management_key: str | None) -> None:
    """Callback of a class button: store the answer, then move to the next unanswered image.
    A callback runs before the page, so the page that follows already shows the next image
    (no second run in which a quick next click could be lost)."""
    image_id, since = st.session_state[shown_key]
    read = readers.Read(image_id, pass_no, class_name, st.session_state.get(confidence_key),
                        st.session_state.get(management_key) if management_key else None, time.monotonic() - since)
    try:
        readers.append_read(run.path, reader, read, names, ids)
    except LesionLabError as exc:
        st.session_state[ERROR] = str(exc)
        return
    except OSError as exc:
        st.session_state[ERROR] = describe_os_error(exc)
        return
    following = readers.next_unanswered(order, done | {image_id}, position)
    st.session_state[key] = position if following is None else following


def reading(reader: str, pass_no: int, reads: list) -> None:
    """One image of the reader's pass, the class buttons, back and skip."""
    order = readers.reading_order(ids, reader, pass_no)
    done = readers.answers(reads, pass_no)
    key = f"read_pos/{run.id}/{split}/{reader}/{pass_no}"
    if key not in st.session_state:  # a new session (a reload): resume where the file says
        st.session_state[key] = readers.resume_position(order, done) or 0
    position = st.session_state[key]
    image_id = order[position]
    st.progress(len(done) / len(order), text=_("{done} of {n} answered · image {position} of {n}",
                                               done=len(done), n=len(order), position=position + 1))
    # When this image was put in front of the reader (again after Back or a skip): time to answer.
    shown_key = f"read_shown/{key}"
    if st.session_state.get(shown_key, (None,))[0] != image_id:
        st.session_state[shown_key] = (image_id, time.monotonic())
    image_col, side_col = st.columns([3, 2])
    record = sample = None
    with image_col, common.user_errors():
        record = cache.run_records(run.path).get(image_id)
        if record is None:
            st.error(_("Image {id} is not in the run's recorded data.", id=image_id))
        else:
            sample = common.read_sample(record)
            outline = st.toggle(_("Lesion outline"), value=True, key="keep_read_outline")
            shown = transforms.overlay(sample["image"], sample["mask"], "outline") if outline else sample["image"]
            st.plotly_chart(figures.zoomable_image(shown), config={"scrollZoom": True, "displaylogo": False},
                            key=f"read_image_{pass_no}_{position}")
            st.caption(_("Drag a box to zoom, scroll to zoom, double-click to see the whole image."))
    with side_col:
        if pass_no == 2:
            model_output(image_id, sample, reads)
        controls(reader, pass_no, order, done, position, image_id, key, shown_key)


def model_output(image_id: str, sample, reads: list) -> None:
    """Second pass: the reader's first answer, the model's probabilities and its heatmap."""
    first = readers.answers(reads, 1).get(image_id)
    st.markdown(_("Your first answer: **{diagnosis}**", diagnosis=cls(first.diagnosis)) if first
                else _("No first answer"))
    st.plotly_chart(fig(plots.probability_bars(probs[ids.index(image_id)], names)), key="read_probs")
    with common.user_errors():
        if sample and (run.path / "best.pt").is_file():
            # Kept for the image shown: a confidence click reruns the page, not the model.
            held = st.session_state.get("read_heatmap")
            if not held or held[0] != (str(run.path), image_id):
                result = cache.explainer(run.path).explain(sample["image"], sample["mask"])
                held = ((str(run.path), image_id), result.overlay(), result.target_class)
                st.session_state["read_heatmap"] = held
            st.image(held[1], width="stretch",
                     caption=_("Grad-CAM of **{name}**; the yellow box marks what the model saw", name=cls(held[2])))


def controls(reader: str, pass_no: int, order: list, done: dict, position: int, image_id: str, key: str,
             shown_key: str) -> None:
    """The answer: confidence, management, one button per class; back and skip."""
    confidence_key, management_key = answer_widgets(position, pass_no)
    if ERROR in st.session_state:
        st.error(rendered(st.session_state.pop(ERROR)), icon=":material/error:")
    st.caption(_("Your answer (keys 1 to {n}):", n=min(len(names), 9)))
    chosen = done.get(image_id)
    for index, class_name in enumerate(names):
        st.button(cls(class_name), key=f"read_class_{index}", width="stretch",
                  type="primary" if chosen and chosen.diagnosis == class_name else "secondary",
                  shortcut=str(index + 1) if index < 9 else None, on_click=answer,
                  args=(reader, pass_no, order, set(done), position, key, shown_key, class_name, confidence_key,
                        management_key))
    back, skip = st.columns(2)
    back.button(_("Back"), key="read_back", icon=":material/arrow_back:", disabled=position == 0, width="stretch",
                on_click=common.set_value, args=(key, position - 1))
    skip.button(_("Skip"), key="read_skip", icon=":material/arrow_forward:", width="stretch",
                on_click=common.set_value, args=(key, (position + 1) % len(order)))


if reader:
    path = readers.reads_path(run.path, reader)
    reads, problems = readers.read_reads(path, names)
    for problem in problems:
        st.warning(rendered(problem), icon=":material/error:")
    in_split = set(ids)  # one file holds the reader's answers on every split
    reads = [r for r in reads if r.image_id in in_split]
    first, second = readers.answers(reads, 1), readers.answers(reads, 2)
    started_key = f"read_second/{run.id}/{split}/{reader}"
    if len(first) < len(ids):
        st.subheader(_("First pass: {reader}", reader=reader))
        reading(reader, 1, reads)
    elif second or st.session_state.get(started_key):
        if len(second) < len(ids):
            st.subheader(_("Second pass, with the model: {reader}", reader=reader))
            st.caption(_("The model's calibrated probabilities and its heatmap are shown; your first answers stay "
                         "as they were."))
            reading(reader, 2, reads)
        else:
            st.success(_("Both passes done: {n} images read twice.", n=len(ids)), icon=":material/task_alt:")
    else:
        st.success(_("First pass done: {n} images read.", n=len(ids)), icon=":material/task_alt:")
        st.button(_("Start the second pass, with the model"), key="read_start_second", icon=":material/smart_toy:",
                  on_click=common.set_value, args=(started_key, True))
else:
    st.info(_("Give your name to start reading."))


st.subheader(_("Readers on the model's ROC"))
class_name = st.selectbox(_("Class against the rest"), readers.study_classes(names), format_func=lang.class_options(),
                          key="keep_read_class")
result, problems = cache.reader_study(run.path, split, class_name)
for problem in problems:
    if not reader or not problem.startswith(f"{readers.FOLDER}/{reader}.csv:"):  # the reader's own: said above
        st.warning(rendered(problem), icon=":material/error:")
if result is None:
    st.caption(_("No answers on the {split} split yet.", split=_(split)))
    st.stop()
c = names.index(class_name)
marks = readers.operating_marks(labels, probs, names, class_name)
st.plotly_chart(fig(figures.reader_roc(labels == c, probs[:, c], result, marks)), key="read_roc",
                config={"toImageButtonOptions": {"format": "png", "filename": f"{run.id}-readers-{split}", "scale": 2}})
st.caption(_("Circles: first pass; diamonds: second pass, with the model; bars: 95% intervals; squares: the model "
             "at specificity 0.82, 0.89 and 0.95. Model AUC {auc}. PNG: the camera icon above the chart.",
             auc=num(result["model"]["auc"])))


def interval(value: dict, signed: bool = False) -> str:
    if value.get("value") is None:
        return _("n/a")
    text = ("+" if signed and value["value"] >= 0 else "") + num(value["value"])
    if value.get("ci_low") is not None:
        text += f" [{num(value['ci_low'])}; {num(value['ci_high'])}]" if lang.language() == "es" else \
            f" [{num(value['ci_low'])}, {num(value['ci_high'])}]"
    return text


verdicts = {"model": _("the model"), "reader": _("the reader"), "none": _("no clear difference"), None: _("n/a")}
rows = [{_("reader"): r["reader"], _("pass"): r["pass"], _("images"): r["n"],
         _("sensitivity [95% CI]"): interval(r["sensitivity"]), _("specificity [95% CI]"): interval(r["specificity"]),
         _("model sensitivity at that specificity"): interval(r["model_sensitivity_at_reader_specificity"]),
         _("model − reader"): interval(r["delta"], signed=True), _("better"): verdicts[r["verdict"]],
         _("change from the first pass"): interval(r["change"]["sensitivity"], signed=True) if "change" in r else ""}
        for r in result["readers"]]
st.dataframe(rows, hide_index=True, width="stretch")
for pass_no, spread in result["summary"].items():
    sens, spec = spread["sensitivity"], spread["specificity"]
    if sens["n_readers"] > 1:
        st.caption(_("Pass {n}, {readers} readers: mean sensitivity {sens} (SD {sens_sd}), mean specificity {spec} "
                     "(SD {spec_sd})", n=pass_no, readers=sens["n_readers"], sens=num(sens["mean"]),
                     sens_sd=num(sens["sd"]), spec=num(spec["mean"]), spec_sd=num(spec["sd"])))
st.download_button(_("Download the table (CSV)"), readers.table_csv(result), file_name=f"{run.id}-readers-{split}.csv",
                   mime="text/csv", key="read_download_csv", on_click="ignore")
