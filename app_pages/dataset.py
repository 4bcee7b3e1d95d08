"""Dataset: choose the data (demo, server folder, ZIP), check it, browse its samples."""

import streamlit as st

from lesion_core import data, models, plots, transforms
from lesion_core.evaluation import subgroups
from app_pages import common, experiments

st.title("Dataset")

SOURCES = {"demo": "Built-in demo", "folder": "Folder on the server", "upload": "Upload a ZIP"}
common.default("keep_ds_source", common.dataset_choice()["source"])
source = st.radio("Source", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="keep_ds_source")

with common.user_errors():
    if source == "demo":
        if st.button("Use the demo dataset", key="ds_use_demo"):
            common.choose_dataset("demo")
    elif source == "folder":
        common.default("keep_ds_folder", common.dataset_choice()["root"])
        folder = st.text_input("Dataset folder on the server", key="keep_ds_folder",
                               help="labels.csv + images/ + masks/, or the ISIC 2017 files")
        if st.button("Open folder", key="ds_open_folder", disabled=not folder):
            common.load_data(folder)  # raises with a clear message before it becomes current
            common.choose_dataset("folder", folder)
    else:
        upload = st.file_uploader("ZIP of a dataset folder", type=["zip"], key="ds_zip")
        if upload is not None and st.button("Import ZIP", key="ds_import"):
            with st.spinner(f"Unpacking {upload.name}..."):
                root = common.import_upload(upload)
            common.choose_dataset("upload", root)

dataset = common.current_data()
if dataset is None:
    st.stop()
st.success(f"Current dataset: **{common.dataset_name()}** ({dataset.root}, {dataset.layout} layout)")
st.caption(f"{len(dataset.class_names)} classes: {', '.join(dataset.class_names)}")

# ---------------------------------------------------------------- validation report
report = dataset.report
st.subheader("Validation report")
st.caption(f"{report.n_usable} usable of {report.n_rows} rows; {len(report.problems)} excluded; "
           f"{len(report.notes)} notes")
counts, chart = st.columns([2, 3])
counts.dataframe(common.counts_frame(dataset))
chart.plotly_chart(plots.class_distribution(report.counts, dataset.class_names), key="ds_dist")
for title, items in (("Problems (rows excluded)", report.problems), ("Notes", report.notes)):
    if items:
        with st.expander(f"{title}: {len(items)}", expanded=title.startswith("Problems")):
            st.dataframe([{"id": p.id or "-", "kind": p.kind, "message": p.message} for p in items],
                         hide_index=True, width="stretch")
if report.split_line:
    st.info(report.split_line)

frame = common.sample_frame(dataset)
META = {"sex": "Sex", "age": "Age band", "site": "Anatomic site"}
present = [c for c in META if c in frame]
if present:
    st.subheader("Patient metadata")
    for column, key in zip(st.columns(len(present)), present):
        values = frame[key].map(subgroups.age_band) if key == "age" else frame[key]
        order = [b for _, _, b in subgroups.AGE_BANDS] if key == "age" else None
        column.plotly_chart(plots.metadata_distribution(values, frame["label"], dataset.class_names,
                                                        f"{META[key]} per class", order), key=f"ds_meta_{key}")

experiments.skin_tones(dataset)

# ---------------------------------------------------------------- samples
st.subheader("Samples")
left, middle, right = st.columns(3)
splits = left.multiselect("Split", ["train", "val", "test"], key="keep_ds_splits")
classes = middle.multiselect("Class", list(dataset.class_names), key="keep_ds_classes")
query = right.text_input("Id contains", key="keep_ds_query")
keep = (frame["split"].isin(splits or ["train", "val", "test"])
        & frame["class"].isin(classes or list(dataset.class_names))
        & frame["id"].str.contains(query, case=False, regex=False))
if present:
    for column, key in zip(st.columns(len(present)), present):
        if key == "age":
            bands = frame["age"].map(subgroups.age_band)
            picked = column.multiselect("Age band", [b for _, _, b in subgroups.AGE_BANDS], key="keep_ds_age")
            keep &= bands.isin(picked) if picked else True
        else:
            picked = column.multiselect(META[key], sorted(set(frame[key]) - {""}), key=f"keep_ds_{key}")
            keep &= frame[key].isin(picked) if picked else True
shown = frame[keep]
st.dataframe(shown, hide_index=True, width="stretch", height=240)

if shown.empty:
    st.info("No sample matches the filters.")
    st.stop()
st.subheader("Sample viewer")
pick, mode = st.columns([2, 1])
common.default("keep_ds_index", 0)
# Filters may have shrunk the table since the index was chosen: keep it in range.
st.session_state["keep_ds_index"] = min(st.session_state["keep_ds_index"], len(shown) - 1)
index = pick.number_input(f"Index in the filtered table (0 to {len(shown) - 1})", min_value=0,
                          max_value=len(shown) - 1, step=1, key="keep_ds_index")
mask_mode = mode.radio("Mask", ["outline", "overlay", "none"], horizontal=True, key="keep_ds_mask")
row = shown.iloc[index]
record = dataset.records[int(row.name)]
with common.user_errors():
    sample = common.read_sample(record)
    image, info = st.columns([2, 1])
    image.image(transforms.overlay(sample["image"], sample["mask"], mask_mode)
                if mask_mode != "none" else sample["image"], width=480)
    info.markdown(f"**index** {index}  \n**id** `{record.id}`  \n**label** {record.label} "
                  f"({dataset.class_names[record.label]})  \n**split** {record.split}  \n"
                  f"**size** {row['width']} x {row['height']}  \n"
                  f"**mask** {'yes' if record.mask_path else 'none'}"
                  + (f"  \n**{dataset.group_column}** {record.group}" if record.group else "")
                  + "".join(f"  \n**{k}** {v}" for k, v in record.meta.items()))

# ---------------------------------------------------------------- batch
st.subheader("A batch of training images as the DataLoader delivers it")
common.default("keep_ds_batch_seed", 0)
seed = st.number_input("Shuffle seed", min_value=0, step=1, key="keep_ds_batch_seed")
with common.user_errors():
    common.show_batch(dataset.split("train"), transforms.preset("eval", 128),
                      common.batch_config(models.DEFAULT_MODEL, 128), dataset.class_names, int(seed),
                      pipeline="the evaluation preset at 128 px, no augmentation (the Augmentations page "
                               "shows a batch through its pipeline)")

# ---------------------------------------------------------------- cache
with st.expander("Decoded-image cache"):
    files, size = data.decoded_cache_usage()
    st.caption(f"{files} decoded samples, {size / 1e6:.1f} MB in {data.decoded_cache_dir()}: training "
               "reads these instead of decoding each image every epoch, and re-makes any that are missing.")
    if st.button("Clear the cache", key="ds_clear_cache", disabled=files == 0):
        freed, freed_bytes = data.clear_decoded_cache()
        st.success(f"Removed {freed} decoded samples ({freed_bytes / 1e6:.1f} MB).")
