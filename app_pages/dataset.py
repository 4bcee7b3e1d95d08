"""Dataset: choose the data (demo, server folder, ZIP), check it, browse its samples."""

import streamlit as st

from app_pages import cache, common, experiments, lang
from app_pages.lang import _, cls, fig, num
from lesion_core import data, models, plots, transforms
from lesion_core.data import tables
from lesion_core.evaluation import subgroups
from lesion_core.settings import preview

st.title(_("Dataset"))

SOURCES = {"demo": _("Built-in demo"), "folder": _("Folder on the server"), "upload": _("Upload a ZIP")}
common.default("keep_ds_source", common.dataset_choice()["source"])
source = st.radio(_("Source"), list(SOURCES), format_func=SOURCES.get, horizontal=True, key="keep_ds_source")

with common.user_errors():
    if source == "demo":
        if st.button(_("Use the demo dataset"), key="ds_use_demo"):
            common.choose_dataset("demo")
    elif source == "folder":
        common.default("keep_ds_folder", common.dataset_choice()["root"])
        folder = st.text_input(_("Dataset folder on the server"), key="keep_ds_folder",
                               help=_("labels.csv + images/ + masks/, or the ISIC 2017 files"))
        if st.button(_("Open folder"), key="ds_open_folder", disabled=not folder):
            cache.load_data(folder)  # raises with a clear message before it becomes current
            common.choose_dataset("folder", folder)
    else:
        upload = st.file_uploader(_("ZIP of a dataset folder"), type=["zip"], key="ds_zip")
        if upload is not None and st.button(_("Import ZIP"), key="ds_import"):
            with st.spinner(_("Unpacking {name}...", name=upload.name)):
                root = common.import_upload(upload)
            common.choose_dataset("upload", root)

dataset = common.current_data()
if dataset is None:
    st.stop()
where = _("uploaded ZIP") if common.dataset_choice()["source"] == "upload" else dataset.root  # not the server's cache
st.success(_("Current dataset: **{name}** ({root}, {layout} layout)", name=common.dataset_name(),
             root=where, layout=dataset.layout))
st.caption(_("{n} classes: {names}", n=len(dataset.class_names), names=", ".join(lang.classes(dataset.class_names))))

# ---------------------------------------------------------------- validation report
report = dataset.report
st.subheader(_("Validation report"))
st.caption(_("{usable} usable of {rows} rows; {excluded} excluded; {notes} notes", usable=report.n_usable,
             rows=report.n_rows, excluded=len(report.problems), notes=len(report.notes)))
counts, chart = st.columns([2, 3])
counts.dataframe(common.counts_frame(dataset))
chart.plotly_chart(fig(plots.class_distribution(report.counts, dataset.class_names)), key="ds_dist")
for title, items, expanded in ((_("Problems (rows excluded)"), report.problems, True), (_("Notes"), report.notes, False)):
    if items:
        with st.expander(f"{title}: {len(items)}", expanded=expanded):
            st.dataframe([{_("id"): p.id or "-", _("kind"): p.kind, _("message"): lang.rendered(p.message)}
                          for p in items],
                         hide_index=True, width="stretch")
if report.split_line:
    st.info(lang.rendered(report.split_line))

frame = tables.sample_frame(dataset, cache.image_sizes(tuple(str(r.image_path) for r in dataset.records)))
META = {"sex": _("Sex"), "age": _("Age band"), "site": _("Anatomic site")}
present = [c for c in META if c in frame]
if present:
    st.subheader(_("Patient metadata"))
    for column, key in zip(st.columns(len(present)), present):
        values = frame[key].map(subgroups.age_band) if key == "age" else frame[key]
        order = [b for _, _, b in subgroups.AGE_BANDS] if key == "age" else None
        chart = plots.metadata_distribution(values, frame["label"], dataset.class_names,
                                            _("{name} per class", name=META[key]), order)
        column.plotly_chart(fig(chart), key=f"ds_meta_{key}")

experiments.skin_tones(dataset)

# ---------------------------------------------------------------- samples
st.subheader(_("Samples"))
left, middle, right = st.columns(3)
splits = left.multiselect(_("Split"), ["train", "val", "test"], format_func=lang.options(), key="keep_ds_splits")
classes = middle.multiselect(_("Class"), list(dataset.class_names), format_func=lang.class_options(),
                             key="keep_ds_classes")
query = right.text_input(_("Id contains"), key="keep_ds_query")
keep = (frame["split"].isin(splits or ["train", "val", "test"])
        & frame["class"].isin(classes or list(dataset.class_names))
        & frame["id"].str.contains(query, case=False, regex=False))
if present:
    for column, key in zip(st.columns(len(present)), present):
        if key == "age":
            bands = frame["age"].map(subgroups.age_band)
            picked = column.multiselect(_("Age band"), [b for _, _, b in subgroups.AGE_BANDS], key="keep_ds_age")
            keep &= bands.isin(picked) if picked else True
        else:
            picked = column.multiselect(META[key], sorted(set(frame[key]) - {""}), key=f"keep_ds_{key}")
            keep &= frame[key].isin(picked) if picked else True
shown = frame[keep]
st.dataframe(common.shown_frame(shown), hide_index=True, width="stretch", height=240)

if shown.empty:
    st.info(_("No sample matches the filters."))
    st.stop()
st.subheader(_("Sample viewer"))
pick, mode = st.columns([2, 1])
common.default("keep_ds_index", 0)
# Filters may have shrunk the table since the index was chosen: keep it in range.
st.session_state["keep_ds_index"] = min(st.session_state["keep_ds_index"], len(shown) - 1)
index = pick.number_input(_("Index in the filtered table (0 to {last})", last=len(shown) - 1), min_value=0,
                          max_value=len(shown) - 1, step=1, key="keep_ds_index")
mask_mode = mode.radio(_("Mask"), ["outline", "overlay", "none"], horizontal=True, format_func=lang.options(),
                       key="keep_ds_mask")
row = shown.iloc[index]
record = dataset.records[int(row.name)]
with common.user_errors():
    sample = common.read_sample(record)
    image, info = st.columns([2, 1])
    image.image(transforms.overlay(sample["image"], sample["mask"], mask_mode)
                if mask_mode != "none" else sample["image"], width=480)
    info.markdown(_("**index** {index}  \n**id** `{id}`  \n**label** {label} ({name})  \n**split** {split}  \n"
                    "**size** {width} x {height}  \n**mask** {mask}", index=index, id=record.id, label=record.label,
                    name=cls(dataset.class_names[record.label]), split=_(record.split), width=row["width"],
                    height=row["height"], mask=_("yes") if record.mask_path else _("none"))
                  + (f"  \n**{dataset.group_column}** {record.group}" if record.group else "")
                  + "".join(f"  \n**{k}** {v}" for k, v in record.meta.items()))

# ---------------------------------------------------------------- batch
st.subheader(_("A batch of training images as the DataLoader delivers it"))
common.default("keep_ds_batch_seed", 0)
seed = st.number_input(_("Shuffle seed"), min_value=0, step=1, key="keep_ds_batch_seed")
with common.user_errors():
    common.show_batch(dataset.split("train"), transforms.preset("eval", 128),
                      preview.batch_config(models.DEFAULT_MODEL, 128), dataset.class_names, int(seed),
                      pipeline=_("the evaluation preset at 128 px, no augmentation (the Augmentations page "
                                 "shows a batch through its pipeline)"))

# ---------------------------------------------------------------- cache
with st.expander(_("Decoded-image cache")):
    files, size = data.decoded_cache_usage()
    st.caption(_("{files} decoded samples, {mb} MB in {folder}: training reads these instead of decoding each "
                 "image every epoch, and re-makes any that are missing.", files=files, mb=num(size / 1e6, 1),
                 folder=data.decoded_cache_dir()))
    if st.button(_("Clear the cache"), key="ds_clear_cache", disabled=files == 0):
        freed, freed_bytes = data.clear_decoded_cache()
        st.success(_("Removed {n} decoded samples ({mb} MB).", n=freed, mb=num(freed_bytes / 1e6, 1)))
