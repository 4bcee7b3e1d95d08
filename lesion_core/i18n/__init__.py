"""Messages of the app in English and Spanish: one gettext catalogue per language, read with Babel.

The message id is the English text itself (gettext's convention), so a page reads as English
and a string nobody translated yet still shows, in English:

    _("Compare runs")                        # pages call app_pages.lang._, which calls translate()
    _("Run {run}", run=run.id)               # placeholders, never f-strings (they cannot be looked up)
    ngettext("{n} image", "{n} images", n, n=n)  # a plural: the language's own plural rule picks the form

Catalogues are standard PO files, lesion_core/i18n/<lang>.po, read by Babel
(babel.messages.pofile) when first used: no compiled .mo to rebuild and keep in sync, and any
PO editor or `msgfmt --check` reads them too. Entries marked `#, fuzzy` (a guess awaiting
review) and obsolete entries (`#~`) are not translations: their msgid shows in English. The
plural rule comes from the catalogue's Plural-Forms header. English needs no file: its msgids
are the text. `python -m lesion_core.i18n.check` lists page strings not wrapped in _() and
msgids missing from a catalogue (--add writes stubs to fill in).

Text that lesion_core writes for people (status.json messages, errors, damage reports, help
texts) stays English, as the command line prints it and the run folder stores it, but stays a
message: N_("building {model}").format(model=name) is a Message (i18n.message), a str of the
English text that keeps its msgid and values; join() and concat() keep lines and parts of
messages so. A page shows such a text through app_pages.lang.rendered() -> localize(), which
translates the msgid and fills in the values, themselves translated (nested messages, phases,
class names) and numbers in the language's notation. status.json keeps the msgid and values
next to the English (runs.write_status), so a page translates a trainer's message after a
reload too. Text that is not a message is looked up whole, or shown as it is.

Class names keep their stable names in files and are translated on screen (class_name()),
numbers are formatted per language with babel.numbers (number()), and plotly figures built by
lesion_core.plots are translated after the fact (figure(); texts with values are kept as
messages in the figure's layout.meta by keep()).
"""

from __future__ import annotations

import functools
import gettext
import io
import numbers as _numbers
import re
import string
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent, get_decimal_symbol, get_group_symbol
from babel.support import Translations

from lesion_core.i18n.message import Message, N_, N_n, concat, from_json, join, plain, to_json

__all__ = ["DEFAULT", "LANGUAGES", "Message", "N_", "N_n", "PARTS", "catalogue", "class_name", "concat", "figure", "forget",
           "from_json", "join", "keep", "localize", "number", "pick_language", "placeholders", "plain", "plurals",
           "to_json", "translate", "translate_plural"]

LANGUAGES = {"en": "English", "es": "Español"}
DEFAULT = "en"
FOLDER = Path(__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{(\w*)(?:![rsa])?(?::[^{}]*)?\}")
PARTS = " · "  # a status line of parts ("epoch 2/4 · train batch 3/10 · ETA 0:42"), each its own message


def catalogue_path(lang: str) -> Path:
    return FOLDER / f"{lang}.po"


# ---------------------------------------------------------------- catalogues (Babel)


def read_catalogue(source, lang: str | None = None) -> Catalog:
    """A PO file (a path, or its text) as a Babel catalogue; obsolete entries left out."""
    data = source.encode("utf-8") if isinstance(source, str) else Path(source).read_bytes()
    return read_po(io.BytesIO(data), locale=lang, ignore_obsolete=True)


def _translated(catalog: Catalog) -> list:
    """The entries that are translations: a msgid, every msgstr filled in, not fuzzy."""
    found = []
    for entry in list(catalog)[1:]:  # [0]: the header
        forms = entry.string if isinstance(entry.string, (tuple, list)) else (entry.string,)
        if entry.id and not entry.fuzzy and forms and all(forms):
            found.append(entry)
    return found


def parse_po(text: str) -> dict[str, str]:
    """msgid -> msgstr of a PO file's text: its singular translations (not fuzzy, not empty)."""
    return {e.id: e.string for e in _translated(read_catalogue(text)) if isinstance(e.id, str)}


@functools.cache
def _catalog(lang: str) -> Catalog | None:
    path = catalogue_path(lang)
    return read_catalogue(path, lang) if lang != DEFAULT and path.is_file() else None


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """msgid -> msgstr of lang's singular translations ({} for English and a language without a file)."""
    found = _catalog(lang)
    return {} if found is None else {e.id: e.string for e in _translated(found) if isinstance(e.id, str)}


@functools.cache
def plurals(lang: str) -> dict[str, tuple]:
    """singular msgid -> (plural msgid, the msgstr of each plural form) of lang's plural entries."""
    found = _catalog(lang)
    return {} if found is None else {e.id[0]: (e.id[1], tuple(e.string))
                                     for e in _translated(found) if not isinstance(e.id, str)}


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """lang's catalogue as gettext translations (compiled in memory from the PO file by Babel,
    with only the entries _translated() accepts), NullTranslations for English."""
    found = _catalog(lang)
    if found is None:
        return gettext.NullTranslations()
    kept = read_catalogue(catalogue_path(lang), lang)  # a copy to prune: the cached one stays whole
    accepted = {entry.id for entry in _translated(kept)}
    for entry in list(kept)[1:]:
        if entry.id not in accepted:  # fuzzy, or a plural with a form left empty (write_mo keeps those)
            del kept[entry.id]
    buffer = io.BytesIO()
    write_mo(buffer, kept, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer)


def forget() -> None:
    """Read the catalogues again when next used (after a catalogue file changed)."""
    for cached in (_catalog, catalogue, plurals, translations, _symbols):
        cached.cache_clear()


def pick_language(requested: str | None = None, locale: str | None = None) -> str:
    """The language to show: requested (e.g. ?lang=es) when known, else the browser's locale
    ("es-ES" -> "es") when we have it, else English."""
    for value in (requested, (locale or "").split("-")[0].split("_")[0]):
        if isinstance(value, str) and value.lower() in LANGUAGES:
            return value.lower()
    return DEFAULT


def placeholders(text: str) -> set[str]:
    """The names of a message's {placeholders}."""
    return {m.group(1) for m in _PLACEHOLDER.finditer(text)}


def translate(msgid: str, lang: str, **values) -> str:
    """msgid in lang (the English msgid when untranslated), its {placeholders} filled from values."""
    text = translations(lang).gettext(msgid)
    return _fill(text, values, lang) if values else text


def translate_plural(singular: str, plural: str, count, lang: str, /, **values) -> str:
    """The form of an ngettext-style message for count in lang (its plural rule), filled from values."""
    text = translations(lang).ngettext(singular, plural, count)
    return _fill(text, values, lang) if values else text


def class_name(name: str, lang: str) -> str:
    """A class name as shown on screen (files and configs keep the stable English name)."""
    return translate(str(name), lang)


# ---------------------------------------------------------------- numbers


@functools.cache
def _symbols(lang: str) -> dict:
    """str.translate table from Python's number notation (1,234.5) to lang's."""
    return {ord(","): get_group_symbol(lang), ord("."): get_decimal_symbol(lang)}


def number(value, digits: int = 3, lang: str = DEFAULT, percent: bool = False) -> str:
    """value with `digits` decimals (as a percentage with percent=True) in lang's notation
    (babel.numbers: 0,873 and 1.234,5 in Spanish); "n/a" (translated) for None."""
    if value is None:
        return translate("n/a", lang)
    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    if percent:
        return format_percent(value, format=pattern + "%", locale=lang)
    return format_decimal(value, format=pattern, locale=lang)


class _Localized(string.Formatter):
    """str.format whose numbers come out in lang's notation ({auc:.3f} -> 0,873 in Spanish)."""

    def __init__(self, lang: str):
        self.table = _symbols(lang)

    def format_field(self, value, format_spec):
        text = format(value, format_spec)
        if isinstance(value, _numbers.Real) and not isinstance(value, bool):
            return text.translate(self.table)
        return text


def _fill(text: str, values: dict, lang: str) -> str:
    try:
        return _Localized(lang).vformat(text, (), values) if lang != DEFAULT else text.format(**values)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):  # a translation with a broken placeholder
        return text


# A stand-alone number as Python writes it: "0.859", "12.5%", "7,470" (thousands grouped).
_DECIMAL = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+)%?\Z")
# A value with its interval, as lesion_core.evaluation.bootstrap writes it: "0.859 [0.799, 0.909]".
_INTERVAL = re.compile(r"[-+]?\d+\.\d+ \[[-+]?\d+\.\d+, [-+]?\d+\.\d+\]\Z")


# ---------------------------------------------------------------- messages on a page


def localize(value, lang: str):
    """A text lesion_core rendered in English, in lang: a Message by its msgid (with the
    language's plural form), its values translated in turn; an error by the message it was
    raised with; other text when it is a msgid as a whole, or a stand-alone decimal number
    (or one with its interval, "0,859 [0,799; 0,909]"); anything else unchanged."""
    if isinstance(value, BaseException):
        first = value.args[0] if len(value.args) == 1 else None
        value = first if isinstance(first, Message) else str.__str__(str(value))
    if lang == DEFAULT or not isinstance(value, str) or not value:
        return value
    if isinstance(value, Message):
        return _localize_message(value, lang)
    found = catalogue(lang).get(value)
    if found is not None:
        return found
    symbols = _symbols(lang)
    if _DECIMAL.match(value):
        return value.translate(symbols)
    if _INTERVAL.match(value):  # with decimal commas the bounds are parted by ";"
        low_high = value.translate(symbols)
        return low_high.replace(symbols[ord(",")] + " ", "; ") if symbols[ord(".")] == "," else low_high
    return value


def _localize_message(message: Message, lang: str) -> str:
    if not message.msgid:  # gettext("") is the catalogue's header
        return str.__str__(message)
    tr = translations(lang)
    text = (tr.ngettext(message.msgid, message.plural, message.n) if message.plural is not None
            else tr.gettext(message.msgid))
    if message.params is None:  # a template, as N_() marked it
        return text
    values = {k: localize(v, lang) if isinstance(v, (str, BaseException)) else v for k, v in message.params.items()}
    try:
        return _Localized(lang).vformat(text, (), values)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):  # a translation with a broken placeholder
        return str.__str__(message)


# ---------------------------------------------------------------- figures

_META = "lesion_lab_messages"


def keep(fig, message):
    """Remember a message with values that a figure shows (a title, a trace name, a label), so
    that figure() translates it by its msgid; returns the message."""
    if isinstance(message, Message):
        meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
        table = dict(meta.get(_META) or {})
        table[str.__str__(message)] = to_json(message)
        fig.layout.meta = {**meta, _META: table}
    return message


def figure(fig, lang: str):
    """A lesion_core.plots figure with its titles, axis names, legend, category labels and
    value labels in lang (numbers in its notation); changed in place and returned."""
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    kept = meta.get(_META) if isinstance(meta.get(_META), dict) else {}
    if _META in meta:  # done with: the browser gets the figure without it
        rest = {k: v for k, v in meta.items() if k != _META}
        fig.layout.meta = rest or None
    if lang == DEFAULT:
        return fig

    def tr(text):
        message = from_json(kept[text], text) if isinstance(text, str) and text in kept else None
        return localize(message if message is not None else text, lang)

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
    layout.separators = get_decimal_symbol(lang) + get_group_symbol(lang)  # plotly: "," and "." in Spanish
    return fig
