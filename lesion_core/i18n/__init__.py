"""Messages of the app in English and Spanish: one gettext catalogue per language, read at load.

The message id is the English text itself (gettext's convention), so a page reads as English
and a string nobody translated yet still shows, in English:

    _("Compare runs")                        # pages call app_pages.lang._, which calls translate()
    _("Run {run}", run=run.id)               # placeholders, never f-strings (they cannot be looked up)

Catalogues are standard PO files, lesion_core/i18n/<lang>.po (msgid "English" / msgstr
"traducción"), parsed here when first used: no compiled .mo to rebuild and keep in sync, and
any PO editor or `msgfmt --check` can still read them. English needs no file: its msgids are
the text. `python -m lesion_core.i18n.check` lists page strings not wrapped in _() and
msgids missing from a catalogue (--add writes stubs to fill in).

Text that lesion_core writes for people (status.json messages, errors, damage reports, help
texts) stays English, as the command line prints it and the run folder stores it. Its
messages are marked N_("building {model}").format(model=name) (gettext's no-op marker: the
text is unchanged, and the checker collects the msgid), and a page shows such a text through
app_pages.lang.rendered(), which finds the message again in the rendered English and gives it
back in the page's language (translate_rendered()).

Class names keep their stable names in files and are translated on screen (class_name()),
numbers are formatted per language (number(): decimal comma in Spanish), and plotly figures
built by lesion_core.plots are translated after the fact (figure()).
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

LANGUAGES = {"en": "English", "es": "Español"}
DEFAULT = "en"
FOLDER = Path(__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{(\w*)(?:![rsa])?(?::[^{}]*)?\}")


def N_(msgid: str) -> str:
    """Mark an English message that lesion_core renders and a page may show: returned as it is
    (the CLI and the run folder keep English); `python -m lesion_core.i18n.check` requires a
    translation of it, and lang.rendered() translates the rendered text on a page."""
    return msgid


def catalogue_path(lang: str) -> Path:
    return FOLDER / f"{lang}.po"


def parse_po(text: str) -> dict[str, str]:
    """msgid -> msgstr of a PO file's text (entries with an empty msgstr are left out)."""
    entries, current, field = {}, {}, None

    def flush():
        if current.get("msgid") and current.get("msgstr"):
            entries[current["msgid"]] = current["msgstr"]

    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword in ("msgid", "msgstr"):
            if keyword == "msgid":
                flush()
                current = {}
            field = keyword
            current[field] = ast.literal_eval(rest)
        elif line.startswith('"') and field:
            current[field] += ast.literal_eval(line)  # a continuation line of the same string
    flush()
    return entries


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """The lang catalogue, {} for English (and for a language without a file)."""
    path = catalogue_path(lang)
    return parse_po(path.read_text(encoding="utf-8")) if lang != DEFAULT and path.is_file() else {}


def pick_language(requested: str | None = None, locale: str | None = None) -> str:
    """The language to show: requested (e.g. ?lang=es) when known, else the browser's locale
    ("es-ES" -> "es") when we have it, else English."""
    for value in (requested, (locale or "").split("-")[0].split("_")[0]):
        if isinstance(value, str) and value.lower() in LANGUAGES:
            return value.lower()
    return DEFAULT


def translate(msgid: str, lang: str, **values) -> str:
    """msgid in lang (the English msgid when untranslated), its {placeholders} filled from values."""
    text = catalogue(lang).get(msgid, msgid)
    return text.format(**values) if values else text


def placeholders(text: str) -> set[str]:
    """The names of a message's {placeholders}."""
    return {m.group(1) for m in _PLACEHOLDER.finditer(text)}


def class_name(name: str, lang: str) -> str:
    """A class name as shown on screen (files and configs keep the stable English name)."""
    return translate(str(name), lang)


def number(value, digits: int = 3, lang: str = DEFAULT, percent: bool = False) -> str:
    """value with `digits` decimals (as a percentage with percent=True), decimal comma in Spanish;
    "n/a" (translated) for None."""
    if value is None:
        return translate("n/a", lang)
    text = f"{value:.{digits}%}" if percent else f"{value:,.{digits}f}"
    if lang == "es":  # 1,234.5 -> 1.234,5
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


# ---------------------------------------------------------------- rendered English back to a message


@functools.cache
def _patterns(lang: str) -> list[tuple[re.Pattern, str]]:
    """(regex of an English message with placeholders, its translation) for reverse lookup,
    the message with the most fixed text first: "epoch {epoch} {phase}, batch {i}/{n}" must win
    over "epoch {epoch} {phase}", which would match the same text with a longer {phase}."""
    out = []
    for msgid, msgstr in catalogue(lang).items():
        names = placeholders(msgid)
        fixed = _PLACEHOLDER.sub("", msgid)
        if not names or "" in names or not re.search(r"[A-Za-z]", fixed):
            continue  # "{name}: {n}" alone would match almost anything
        pieces, pos, seen = [], 0, set()
        for m in _PLACEHOLDER.finditer(msgid):
            name = m.group(1)  # a placeholder used twice must hold the same text twice
            pieces.append(re.escape(msgid[pos:m.start()]) + (f"(?P={name})" if name in seen else f"(?P<{name}>.+?)"))
            seen.add(name)
            pos = m.end()
        pieces.append(re.escape(msgid[pos:]))
        out.append((len(fixed), re.compile("".join(pieces) + r"\Z", re.S), msgstr))
    return [(pattern, msgstr) for _, pattern, msgstr in sorted(out, key=lambda e: -e[0])]


_DECIMAL = re.compile(r"[-+]?\d+\.\d+%?\Z")
# A value with its interval, as lesion_core.evaluation.bootstrap writes it: "0.859 [0.799, 0.909]".
_INTERVAL = re.compile(r"[-+]?\d+\.\d+ \[[-+]?\d+\.\d+, [-+]?\d+\.\d+\]\Z")
PARTS = " · "  # a status line of parts ("epoch 2/4 · train batch 3/10 · ETA 0:42"), each its own message
# A problem line of a validation report (lesion_core.data.Report.format): "  ISIC_0001: [mask_size] mask is ...".
_REPORT_LINE = re.compile(r"(\s*\S.*?: \[\w+\] )(.+)\Z")


def _translate_line(line: str, lang: str) -> str:
    """One line of a text of lines: its indentation kept, a report line's "id: [kind] " prefix
    kept, the rest translated."""
    found = _REPORT_LINE.match(line)
    if found:
        return found.group(1) + translate_rendered(found.group(2), lang)
    body = line.lstrip()
    return line[:len(line) - len(body)] + translate_rendered(body, lang)


def translate_rendered(text, lang: str):
    """Translate text that was already rendered in English (figure titles, status messages,
    errors): an exact msgid, else a message with placeholders whose fixed parts match (the
    values are translated too: class names, phases, nested messages), else a decimal number
    (or one with its interval, "0,859 [0,799; 0,909]") with a comma. A text of several lines
    is translated line by line, a line of parts joined by " · " part by part. Other text passes."""
    if lang == DEFAULT or not isinstance(text, str) or not text:
        return text
    table = catalogue(lang)
    if text in table:
        return table[text]
    if lang == "es" and _DECIMAL.match(text):
        return text.replace(".", ",")
    if lang == "es" and _INTERVAL.match(text):  # with decimal commas the bounds are parted by ";"
        return text.replace(",", ";").replace(".", ",")
    if "\n" in text:  # a text of lines (an error with the validation report under it): each line is a message
        return "\n".join(_translate_line(line, lang) for line in text.split("\n"))
    if PARTS in text:  # before the patterns: "epoch {epoch} {phase}" would swallow the whole line
        return PARTS.join(translate_rendered(part, lang) for part in text.split(PARTS))
    for pattern, msgstr in _patterns(lang):
        match = pattern.match(text)
        if match:
            return msgstr.format(**{k: translate_rendered(v, lang) for k, v in match.groupdict().items()})
    return text


def figure(fig, lang: str):
    """A lesion_core.plots figure with its titles, axis names, legend, category labels and
    value labels in lang (decimal comma in Spanish); changed in place and returned."""
    if lang == DEFAULT:
        return fig
    tr = functools.partial(translate_rendered, lang=lang)
    layout = fig.layout
    if layout.title and layout.title.text:
        layout.title.text = tr(layout.title.text)
    for axis in (getattr(layout, name) for name in dir(layout) if re.fullmatch(r"[xy]axis\d*", name)):
        if axis is not None and axis.title and axis.title.text:
            axis.title.text = tr(axis.title.text)
        if axis is not None and axis.categoryarray is not None:  # the order of categories translated below
            axis.categoryarray = [tr(v) if isinstance(v, str) else v for v in axis.categoryarray]
    for note in layout.annotations or ():  # a baseline's label ("unshifted 0.812")
        if note.text:
            note.text = tr(note.text)
    for trace in fig.data:
        if getattr(trace, "name", None):
            trace.name = tr(trace.name)
        for attr in ("x", "y", "text"):
            values = getattr(trace, attr, None)
            if values is not None and not isinstance(values, str) and len(values) and isinstance(values[0], str):
                setattr(trace, attr, [tr(v) for v in values])
            elif values is not None and len(values) and isinstance(values[0], (list, tuple)):
                setattr(trace, attr, [[tr(v) for v in row] for row in values])
    if lang == "es":
        layout.separators = ",."  # plotly: decimal comma, dot for thousands
    return fig
