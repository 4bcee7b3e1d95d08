"""Reader study: clinicians read a split's images, and each reader's sensitivity and
specificity becomes a point on the model's ROC (Esteva 2017, Haenssle 2018, Tschandl 2019),
once alone and once with the model's output (Tschandl 2020).

Storage: runs/<run>/readers/<reader-id>.csv, one row per answer, appended with O_APPEND as
the reader answers (a later row for the same image and pass replaces the earlier one: going
back to change an answer). A reader id is a slug made from the name the reader typed, never
the name itself, so no name reaches the file system unchecked. The files are untrusted input:
unreadable rows are skipped and named, never fatal.

Scoring, for one class against the rest on the images a reader answered: sensitivity and
specificity with Wilson 95% intervals; the model's sensitivity at the reader's specificity
(and its specificity at the reader's sensitivity) on the same images, from its ROC; the
difference model - reader in sensitivity with a stratified bootstrap interval over images,
and a verdict ("model" or "reader" when the interval excludes 0, else "none").
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesion_core import csvsafe, runs
from lesion_core.errors import DataError
from lesion_core.i18n import N_, N_n
from lesion_core.inference import temperature as scaling

FOLDER = "readers"
COLUMNS = ("image_id", "pass", "diagnosis", "confidence", "management", "time_s", "timestamp")
PASSES = (1, 2)
MANAGEMENT = ("excise", "follow up", "reassure")
CONFIDENCE = (1, 2, 3, 4, 5)
N_RESAMPLES = 1000
SEED = 0
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval
MAX_ID = 40
MAX_FILE_BYTES = 5_000_000  # ~80 000 answers; a bigger file is not one a reader wrote
_SLUG = re.compile(r"[^a-z0-9]+")


# ---------------------------------------------------------------- readers and their files


def reader_id(name: str) -> str:
    """The file-safe id of a reader's name: ASCII letters and digits joined by "-" ("Dr. Ana
    Pérez" -> "dr-ana-perez"); a name with no such character gets "reader-<hash>".
    Raises DataError for an empty name."""
    name = str(name or "").strip()
    if not name:
        raise DataError(N_("give the reader's name"))
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _SLUG.sub("-", ascii_name.lower()).strip("-")[:MAX_ID].strip("-")
    return slug or "reader-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


def is_reader_id(text: str) -> bool:
    """Whether text is an id reader_id() could have made (the only names used as file names)."""
    return isinstance(text, str) and 0 < len(text) <= MAX_ID + 7 and reader_id(text) == text


def reads_path(run_dir, reader: str) -> Path:
    """runs/<run>/readers/<reader>.csv; reader must be a reader id (DataError otherwise)."""
    if not is_reader_id(reader):
        raise DataError(N_("not a reader id: {reader}").format(reader=repr(str(reader))[:60]))
    return Path(run_dir) / FOLDER / f"{reader}.csv"


def list_readers(run_dir) -> list[str]:
    """The reader ids that have a reads file in the run folder, sorted."""
    folder = Path(run_dir) / FOLDER
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.csv") if p.is_file() and is_reader_id(p.stem))


@dataclass(frozen=True)
class Read:
    """One answer: an image of the split, the pass (1 alone, 2 with the model), the class named."""
    image_id: str
    pass_no: int
    diagnosis: str
    confidence: int | None = None
    management: str | None = None
    time_s: float | None = None
    timestamp: float | None = None


def _optional_int(text: str, allowed) -> int | None:
    if text == "":
        return None
    value = int(text)
    if value not in allowed:
        raise ValueError(text)
    return value


def _optional_float(text: str) -> float | None:
    if text == "":
        return None
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def parse_read(row: dict, class_names) -> Read:
    """A Read from one CSV row (text values); ValueError naming what is wrong."""
    image_id = str(row.get("image_id") or row.get("id") or "").strip()
    if not image_id or len(image_id) > 200:
        raise ValueError("image id")
    diagnosis = str(row.get("diagnosis") or "").strip()
    match = {n.lower(): n for n in class_names}.get(diagnosis.lower())
    if match is None:
        raise ValueError(f"diagnosis {diagnosis[:40]!r}")
    pass_text = str(row.get("pass") or "1").strip()
    management = str(row.get("management") or "").strip().lower() or None
    if management is not None and management not in MANAGEMENT:
        raise ValueError(f"management {management[:40]!r}")
    return Read(image_id, _optional_int(pass_text, PASSES), match,
                _optional_int(str(row.get("confidence") or "").strip(), CONFIDENCE), management,
                _optional_float(str(row.get("time_s") or "").strip()),
                _optional_float(str(row.get("timestamp") or "").strip()))


def read_reads(path, class_names) -> tuple[list[Read], list[str]]:
    """(the answers in a reads file in file order, problems). Rows that cannot be read, and
    first-pass rows of an image written after its second-pass answer (the first answer is
    frozen once the model's output on that image was shown), are skipped and counted in problems."""
    path = Path(path)
    name = f"{FOLDER}/{path.name}"
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return [], [N_("{file}: larger than {mb} MB, not read").format(file=name, mb=MAX_FILE_BYTES // 1_000_000)]
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [N_("{file}: cannot be read ({error})").format(file=name, error=exc.strerror or exc)]
    reads, bad, frozen, shown = [], 0, 0, set()
    for row in csv.DictReader(io.StringIO(text.replace("\0", "")), fieldnames=COLUMNS, restkey="extra"):
        row = {k: csvsafe.restore(v) if isinstance(v, str) else v for k, v in row.items()}
        if row.get("image_id") == COLUMNS[0] and row.get("pass") == COLUMNS[1]:
            continue  # the header (again, when two writers both started the file)
        try:
            if row.get("extra"):
                raise ValueError("extra fields")
            read = parse_read(row, class_names)
        except (ValueError, TypeError):
            bad += 1
            continue
        if read.pass_no == 1 and read.image_id in shown:
            frozen += 1
            continue
        if read.pass_no == 2:
            shown.add(read.image_id)
        reads.append(read)
    problems = []
    if bad:
        problems.append(N_n("{file}: {n} unreadable row skipped", "{file}: {n} unreadable rows skipped",
                            bad).format(file=name, n=bad))
    if frozen:
        problems.append(N_("{file}: {n} first-pass answers changed after the model was shown, ignored").format(
            file=name, n=frozen))
    return reads, problems


def answers(reads: list[Read], pass_no: int) -> dict[str, Read]:
    """image id -> the reader's last answer in that pass."""
    return {r.image_id: r for r in reads if r.pass_no == pass_no}


def append_read(run_dir, reader: str, read: Read, class_names, ids=None) -> Read:
    """Append one answer to the reader's file (created with its header), and return it as
    stored (with its timestamp). Refused (DataError): an image not among ids, a class not of
    the run, a second-pass answer before the image's first one, a first-pass answer for an
    image whose second pass is done (the model's output on it was shown)."""
    path = reads_path(run_dir, reader)
    if ids is not None and read.image_id not in set(ids):
        raise DataError(N_("image {id} is not in the split being read").format(id=read.image_id))
    row = {"image_id": read.image_id, "pass": read.pass_no, "diagnosis": read.diagnosis,
           "confidence": "" if read.confidence is None else read.confidence, "management": read.management or "",
           "time_s": "" if read.time_s is None else f"{read.time_s:.1f}",
           "timestamp": f"{time.time() if read.timestamp is None else read.timestamp:.3f}"}
    try:  # the same checks as reading back
        stored = parse_read({k: str(v) for k, v in row.items()}, class_names)
    except ValueError as exc:
        raise DataError(N_("not an answer Lesion Lab can store: {error}").format(error=exc)) from None
    done, _problems = read_reads(path, class_names)
    if stored.pass_no == 1 and stored.image_id in answers(done, 2):
        raise DataError(N_("the first answer of {reader} on {id} is closed: the model's output on it was shown").format(
            reader=reader, id=stored.image_id))
    if stored.pass_no == 2 and stored.image_id not in answers(done, 1):
        raise DataError(N_("image {id} has no first-pass answer yet").format(id=stored.image_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    # One O_APPEND write per answer (runs.append_line): two tabs of the same reader cannot
    # interleave their rows, and a crash loses at most the answer being written. Cells go
    # through the one CSV writer, so an image id never runs as a spreadsheet formula.
    if not path.is_file() or path.stat().st_size == 0:
        runs.append_line(path, ",".join(COLUMNS))
    runs.append_line(path, csvsafe.write_rows([[row[c] for c in COLUMNS]]))
    return stored


def load_study(run_dir, class_names, ids=None) -> tuple[dict[str, list[Read]], list[str]]:
    """({reader id: its answers}, problems) of every reads file in the run folder; with ids,
    only the answers on those images (one file holds a reader's answers on every split)."""
    study, problems = {}, []
    keep = None if ids is None else set(map(str, ids))
    for reader in list_readers(run_dir):
        reads, found = read_reads(reads_path(run_dir, reader), class_names)
        problems += found
        reads = [r for r in reads if keep is None or r.image_id in keep]
        if reads:
            study[reader] = reads
    return study, problems


def reading_order(ids, reader: str, pass_no: int) -> list[str]:
    """The split's ids in the fixed shuffled order of this reader and pass (the same on every
    reload; another for each reader, so no image is always read tired)."""
    seed = int.from_bytes(hashlib.sha256(f"{reader}/{pass_no}".encode()).digest()[:8], "little")
    ordered = sorted(map(str, ids))
    return [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]


def resume_position(order: list[str], answered) -> int | None:
    """Where a reader resumes: the first unanswered image after the last answered one in
    order (wrapping round to images skipped earlier); None when every image is answered."""
    answered = set(answered)
    done = [i for i, image_id in enumerate(order) if image_id in answered]
    start = done[-1] + 1 if done else 0
    for offset in range(len(order)):
        position = (start + offset) % len(order)
        if order[position] not in answered:
            return position
    return None


def next_unanswered(order: list[str], answered, position: int) -> int | None:
    """The first unanswered position after position (wrapping); None when all are answered."""
    answered = set(answered)
    for offset in range(1, len(order) + 1):
        candidate = (position + offset) % len(order)
        if order[candidate] not in answered:
            return candidate
    return None


# ---------------------------------------------------------------- the model's side


def model_predictions(run_dir, split: str):
    """(ids list, labels (N,) int, calibrated probabilities (N, C), class names) of the run's
    predictions_<split>.csv; None when it has none, DataError naming a damaged one. The one
    place the study takes the model's probabilities from (the run's stored predictions,
    temperature-scaled as the pages and `predict` show them)."""
    from lesion_core import inference
    from lesion_core.evaluation import review

    path = Path(run_dir) / f"predictions_{split}.csv"
    if not path.is_file():
        return None
    frame = inference.read_predictions(path)
    labels, raw, names = review.frame_arrays(frame)
    ids = [str(i) for i in frame["id"]]
    return ids, labels, scaling.apply_temperature(raw, scaling.read_temperature(run_dir)), names


def operating_marks(labels, probs, class_names, class_name: str) -> dict[float, float]:
    """{specificity: the model's sensitivity there} at operating.TARGET_SPECIFICITIES, for the
    study's figure (undefined ones left out)."""
    from lesion_core.evaluation import operating

    points = operating.operating_points(labels, probs, class_names)[class_name]["sens_at_spec"]
    return {float(s): v for s, v in points.items() if v == v}


def study_classes(class_names) -> list[str]:
    """The classes a study is scored for, melanoma first when the class set has it."""
    names = list(class_names)
    return sorted(names, key=lambda n: n.lower() != "melanoma")


def asks_management(class_names) -> bool:
    """Whether the page asks for a management choice: dermatology classes (with melanoma)."""
    return any(n.lower() == "melanoma" for n in class_names)


# ---------------------------------------------------------------- scoring


def wilson_interval(k: int, n: int) -> tuple[float | None, float | None]:
    """Wilson score 95% interval of a proportion k/n; (None, None) when n is 0."""
    if n == 0:
        return None, None
    p, z2 = k / n, Z95 ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def model_sensitivity_at(is_class, scores, specificity) -> np.ndarray:
    """The model's best sensitivity among its ROC points whose specificity is at least
    `specificity`, for each row: scores (B, N) or (N,), is_class (N,) bool, specificity (B,)
    or a number. Threshold rule p >= t, as sklearn's roc_curve."""
    is_class = np.asarray(is_class, bool)
    scores = np.atleast_2d(np.asarray(scores, float))
    spec = np.broadcast_to(np.asarray(specificity, float), (len(scores),))
    negatives = -np.sort(-scores[:, ~is_class], axis=1)  # largest first
    positives = scores[:, is_class]
    n_neg = negatives.shape[1]
    # At most m negatives may be flagged; the threshold must then lie above the (m+1)-th largest.
    allowed = np.floor((1 - spec) * n_neg + 1e-9).astype(int)
    out = np.ones(len(scores))
    below = allowed < n_neg
    rows = np.flatnonzero(below)
    if rows.size:
        cut = negatives[rows, allowed[rows]]
        out[rows] = (positives[rows] > cut[:, None]).mean(axis=1)
    return out


def model_specificity_at(is_class, scores, sensitivity) -> np.ndarray:
    """The model's best specificity among its ROC points whose sensitivity is at least
    `sensitivity`, for each row (shapes as model_sensitivity_at)."""
    is_class = np.asarray(is_class, bool)
    scores = np.atleast_2d(np.asarray(scores, float))
    sens = np.broadcast_to(np.asarray(sensitivity, float), (len(scores),))
    positives = -np.sort(-scores[:, is_class], axis=1)
    negatives = scores[:, ~is_class]
    needed = np.ceil(sens * positives.shape[1] - 1e-9).astype(int)  # positives that must be flagged
    out = np.ones(len(scores))
    rows = np.flatnonzero(needed > 0)
    if rows.size:
        cut = positives[rows, needed[rows] - 1]
        out[rows] = 1 - (negatives[rows] >= cut[:, None]).mean(axis=1)
    return out


def _rates(is_class, says, indices) -> tuple[np.ndarray, np.ndarray]:
    """Sensitivity and specificity (B,) of a reader's yes/no on each row of indices (B, N)."""
    truth, said = is_class[indices], says[indices]
    sens = (truth & said).sum(axis=1) / truth.sum(axis=1)
    spec = (~truth & ~said).sum(axis=1) / (~truth).sum(axis=1)
    return sens, spec


def _interval(value, replicates) -> dict:
    replicates = np.asarray(replicates, float)
    replicates = replicates[np.isfinite(replicates)]
    low, high = (float(v) for v in np.percentile(replicates, [2.5, 97.5])) if replicates.size else (None, None)
    return {"value": None if value is None or not math.isfinite(value) else float(value), "ci_low": low, "ci_high": high}


def _verdict(delta: dict) -> str | None:
    if delta["ci_low"] is None or delta["ci_high"] is None:
        return None
    return "model" if delta["ci_low"] > 0 else "reader" if delta["ci_high"] < 0 else "none"


def _resamples(is_class, n_resamples: int, seed: int) -> np.ndarray:
    from lesion_core.evaluation.bootstrap import stratified_indices

    # Stratified by the class: every resample keeps the numbers of positives and negatives,
    # so sensitivity and specificity stay defined in each.
    return stratified_indices(is_class.astype(np.int64), n_resamples, seed)


def score_reader(is_class, says, scores, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict:
    """One reader's pass against the model on the same images: is_class (N,) bool truth,
    says (N,) bool (the reader named the class), scores (N,) the model's probability of it.

    {"n", "n_positive", "sensitivity", "specificity" (Wilson 95%), "model_sensitivity_at_reader_specificity",
    "model_specificity_at_reader_sensitivity", "delta" (model - reader sensitivity at the reader's
    specificity; stratified bootstrap 95%), "verdict"}; each a {"value", "ci_low", "ci_high"}."""
    is_class, says = np.asarray(is_class, bool), np.asarray(says, bool)
    scores = np.asarray(scores, float)
    n, n_pos = len(is_class), int(is_class.sum())
    tp, tn = int((is_class & says).sum()), int((~is_class & ~says).sum())
    out = {"n": n, "n_positive": n_pos}
    sens = tp / n_pos if n_pos else None
    spec = tn / (n - n_pos) if n - n_pos else None
    for key, k, m, value in (("sensitivity", tp, n_pos, sens), ("specificity", tn, n - n_pos, spec)):
        low, high = wilson_interval(k, m)
        out[key] = {"value": value, "ci_low": low, "ci_high": high}
    empty = {"value": None, "ci_low": None, "ci_high": None}
    if sens is None or spec is None:
        return out | {"model_sensitivity_at_reader_specificity": empty, "model_specificity_at_reader_sensitivity": empty,
                      "delta": empty, "verdict": None}
    indices = _resamples(is_class, n_resamples, seed)
    boot_sens, boot_spec = _rates(is_class, says, indices)
    model_sens = model_sensitivity_at(is_class, scores[indices], boot_spec)
    model_spec = model_specificity_at(is_class, scores[indices], boot_sens)
    point_sens = float(model_sensitivity_at(is_class, scores, spec)[0])
    point_spec = float(model_specificity_at(is_class, scores, sens)[0])
    delta = _interval(point_sens - sens, model_sens - boot_sens)
    return out | {"model_sensitivity_at_reader_specificity": _interval(point_sens, model_sens),
                  "model_specificity_at_reader_sensitivity": _interval(point_spec, model_spec),
                  "delta": delta, "verdict": _verdict(delta)}


def score_change(is_class, says_first, says_second, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict:
    """Second pass minus first on the same images (paired): {"sensitivity", "specificity"},
    each {"value", "ci_low", "ci_high"} with a stratified bootstrap interval."""
    is_class = np.asarray(is_class, bool)
    first, second = np.asarray(says_first, bool), np.asarray(says_second, bool)
    if is_class.all() or not is_class.any():
        empty = {"value": None, "ci_low": None, "ci_high": None}
        return {"sensitivity": empty, "specificity": empty}
    identity = np.arange(len(is_class))[None]
    indices = _resamples(is_class, n_resamples, seed)
    (s1, p1), (s2, p2) = _rates(is_class, first, identity), _rates(is_class, second, identity)
    (b_s1, b_p1), (b_s2, b_p2) = _rates(is_class, first, indices), _rates(is_class, second, indices)
    return {"sensitivity": _interval(float(s2[0] - s1[0]), b_s2 - b_s1),
            "specificity": _interval(float(p2[0] - p1[0]), b_p2 - b_p1)}


def _spread(values: list) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "min": None, "max": None, "n_readers": 0}
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "min": float(min(values)), "max": float(max(values)), "n_readers": len(values)}


def score_study(study: dict[str, list[Read]], ids, labels, probs, class_names, class_name: str | None = None,
                split: str = "test", n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict:
    """The study's scores for one class against the rest (default: melanoma first):
    {"split", "class", "n", "readers": [one row per reader and pass, see score_reader, plus
    "reader", "pass" and, for pass 2, "change" from pass 1 on the images read in both],
    "summary": {pass: mean and spread over readers}, "model": {"auc"}}.

    study: {reader id: answers}; ids, labels (N,) int, probs (N, C): the model's predictions on
    the split. Answers for images outside ids are refused (DataError naming them)."""
    from sklearn.metrics import roc_auc_score

    names = list(class_names)
    class_name = class_name or study_classes(names)[0]
    if class_name not in names:
        raise DataError(N_("class {name} is not one of the run's classes ({classes})").format(
            name=repr(class_name), classes=", ".join(names)))
    ids = [str(i) for i in ids]
    position = {image_id: i for i, image_id in enumerate(ids)}
    unknown = sorted({r.image_id for reads in study.values() for r in reads if r.image_id not in position})
    if unknown:
        shown = ", ".join(unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        raise DataError(N_("{n} image ids are not in the {split} split: {ids}").format(
            n=len(unknown), split=split, ids=shown))
    c = names.index(class_name)
    is_class_all = np.asarray(labels) == c
    scores_all = np.asarray(probs, float)[:, c]
    rows = []
    for reader in sorted(study):
        by_pass = {p: answers(study[reader], p) for p in PASSES}
        for pass_no in PASSES:
            read = by_pass[pass_no]
            if not read:
                continue
            chosen = np.array([position[i] for i in read])
            says = np.array([r.diagnosis == class_name for r in read.values()])
            row = {"reader": reader, "pass": pass_no}
            row |= score_reader(is_class_all[chosen], says, scores_all[chosen], n_resamples, seed)
            if pass_no == 2:
                both = [i for i in read if i in by_pass[1]]
                chosen = np.array([position[i] for i in both])
                row["change"] = score_change(is_class_all[chosen], [by_pass[1][i].diagnosis == class_name for i in both],
                                             [read[i].diagnosis == class_name for i in both], n_resamples, seed)
            rows.append(row)
    summary = {}
    for pass_no in PASSES:
        chosen = [r for r in rows if r["pass"] == pass_no]
        if chosen:
            summary[str(pass_no)] = {key: _spread([r[key]["value"] for r in chosen])
                                     for key in ("sensitivity", "specificity", "delta")}
    defined = is_class_all.any() and not is_class_all.all()
    return {"split": split, "class": class_name, "n": len(ids), "readers": rows, "summary": summary,
            "model": {"auc": float(roc_auc_score(is_class_all, scores_all)) if defined else None}}


def table_rows(result: dict) -> list[dict]:
    """score_study()'s readers as flat rows (CSV download, the page's and the report's table)."""
    out = []
    for row in result["readers"]:
        flat = {"class": result["class"], "reader": row["reader"], "pass": row["pass"], "n": row["n"]}
        for key in ("sensitivity", "specificity", "model_sensitivity_at_reader_specificity",
                    "model_specificity_at_reader_sensitivity", "delta"):
            for part in ("value", "ci_low", "ci_high"):
                flat[key if part == "value" else f"{key}_{part}"] = row[key][part]
        flat["verdict"] = row["verdict"]
        change = row.get("change") or {}
        for key in ("sensitivity", "specificity"):
            flat[f"change_{key}"] = (change.get(key) or {}).get("value")
        out.append(flat)
    return out


def table_csv(result: dict) -> str:
    """table_rows() as CSV text."""
    rows = table_rows(result)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return out.getvalue()


def read_reads_table(path, class_names) -> dict[str, list[Read]]:
    """A study given as one CSV (`id,reader,diagnosis[,confidence,management,pass]`), as
    {reader id: answers}; DataError naming the rows that cannot be read (nothing is scored
    from a half-read table)."""
    try:
        text = Path(path).read_bytes()[:MAX_FILE_BYTES + 1].decode("utf-8-sig", errors="replace")
    except OSError as exc:
        raise DataError(N_("{file}: cannot be read ({error})").format(file=path, error=exc.strerror or exc)) from None
    reader_rows = csv.DictReader(io.StringIO(text))
    columns = {c.strip().lower() for c in reader_rows.fieldnames or []}
    if not {"id", "reader", "diagnosis"} <= columns:
        raise DataError(N_("{file}: needs the columns id, reader and diagnosis").format(file=path))
    study, bad = {}, []
    for line, row in enumerate(reader_rows, start=2):
        row = {str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        try:
            read = parse_read(row, class_names)
            reader = reader_id(row.get("reader", ""))
        except (ValueError, DataError) as exc:
            bad.append(f"{line} ({exc})")
            continue
        study.setdefault(reader, []).append(read)
    if bad:
        raise DataError(N_("{file}: rows that cannot be read: {rows}").format(
            file=path, rows=", ".join(bad[:10]) + (", ..." if len(bad) > 10 else "")))
    return study
