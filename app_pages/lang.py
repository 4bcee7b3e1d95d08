"""The language of the pages: `_()` for text, `num()` for numbers, `cls()` for class names.

The choice lives in session state (kept across pages) and in the URL (?lang=es, kept across
reloads and shareable); a new session without ?lang= takes the browser's language when
Streamlit exposes it (st.context.locale), else English. Catalogues: lesion_core/i18n/*.po.
`ngettext()` picks a plural form by the language's rule; `rendered()` translates lesion_core's messages by id.
"""

from __future__ import annotations

import functools
import re

import streamlit as st

from lesion_core import i18n

LANG = "keep_lang"  # the sidebar's language box; "keep_" so its value survives page switches


def _browser_locale() -> str | None:
    try:
        return st.context.locale
    except Exception:  # no browser behind this session (bare script, some test harnesses)
        return None


def language() -> str:
    """The current language code ("en" or "es")."""
    lang = st.session_state.get(LANG)
    if lang not in i18n.LANGUAGES:
        lang = i18n.pick_language(st.query_params.get("lang"), _browser_locale())
        st.session_state[LANG] = lang
    return lang


def picker() -> None:
    """The sidebar's language box (common.save_to_url keeps it in ?lang= with the other choices)."""
    language()
    # Both languages in the label: whoever cannot read the current one still finds the box.
    st.selectbox("Idioma / Language",  # i18n: skip
                 list(i18n.LANGUAGES), format_func=i18n.LANGUAGES.get, key=LANG)


def _(msgid: str, **values) -> str:
    """msgid translated to the current language, {placeholders} filled from values."""
    return i18n.translate(msgid, language(), **values)


def ngettext(singular: str, plural: str, count, /, **values) -> str:
    """The form of an ngettext-style message for count in the current language (its plural
    rule: 1 núcleo, 2 núcleos), filled from values."""
    return i18n.translate_plural(singular, plural, count, language(), **values)


def num(value, digits: int = 3) -> str:
    """A number with `digits` decimals in the current language's notation (0,873 in Spanish)."""
    return i18n.number(value, digits, language())


def decimal_point_note() -> None:
    """Once above a page's decimal number fields, in a language that writes a decimal comma: say
    that those fields take a point. Streamlit's number field and slider have no locale (their
    format is printf's), while keeping them keeps the steppers and the bounds; tables and texts
    write the language's comma (numbers_table, num)."""
    if i18n.number(0.5, 1, language()) != "0.5":
        st.caption(_("Number fields take a decimal point (0.5); tables and texts write a decimal comma."))


def pct(value, digits: int = 0) -> str:
    """A fraction as a percentage in the current language's notation."""
    return i18n.number(value, digits, language(), percent=True)


def setting(value) -> str:
    """A config value as the page's language writes it: a number as the config has it (0.0003,
    not 0.000; decimal comma in Spanish), a word through the catalogue ("cosine", "demo")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = f"{value:g}"
        return text.replace(".", ",") if language() == "es" else text
    return _(str(value))


def cls(name) -> str:
    """A class name as shown on screen; files keep the stable (English) name."""
    return i18n.class_name(name, language())


def classes(names) -> list[str]:
    """Several class names as shown on screen."""
    return [cls(n) for n in names]


def options():
    """format_func for option values (splits, modes): their translation, in the language of
    this run. Bound now because Streamlit may call format_func outside the script run."""
    return functools.partial(i18n.translate, lang=language())


def class_options():
    """format_func for class-name options, bound to the language of this run."""
    return functools.partial(i18n.class_name, lang=language())


def rendered(text):
    """A text lesion_core rendered in English (a status message, an error or the error itself,
    a help text, a shape in words) in the current language: a message by its msgid and values
    (i18n.localize), other text when it is a msgid as a whole; else unchanged."""
    return i18n.localize(text, language())


# What makes markdown load, link, colour or format: images and links ![x](...), [x](...),
# directives :red[...], autolinks and HTML <...>, code `...`, emphasis *...*, LaTeX $...$,
# headings, tables. Underscores, colons and parentheses stay as they are (paths and messages
# are full of them, and without brackets they load and link nothing).
_MARKDOWN = re.compile(r"([\\`*\[\]<>$#|~])")


def md(text) -> str:
    """Text read from a run folder or a dataset (a status message, a damage report, an error
    naming a file) for a place that renders markdown (st.markdown, captions, alerts, progress
    text), with every character that would make it markdown escaped: `![b](http://host/x.png)`
    shows as typed and loads nothing, `**x**` is not bold, `:red[x]` is not coloured."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def numbers_table(table, digits: dict):
    """(table, column_config) for st.dataframe with the columns named in digits ({column:
    decimals}) written as the current language writes numbers. Streamlit's number formats
    ("%.3f") know only the decimal point and "localized" follows the browser, not this choice:
    in English the columns stay numbers (sortable) with a printf format; in other languages they
    become text with a decimal comma, aligned right. table: a DataFrame or a list of row dicts."""
    if language() == i18n.DEFAULT:
        return table, {col: st.column_config.NumberColumn(format=f"%.{d}f") for col, d in digits.items()}

    def cell(value, d):
        missing = value is None or (isinstance(value, float) and value != value)  # None or NaN
        return None if missing else num(value, d)

    if hasattr(table, "columns"):  # a DataFrame
        table = table.copy()
        for col, d in digits.items():
            if col in table.columns:
                table[col] = [cell(v, d) for v in table[col].tolist()]
    else:
        table = [{k: cell(v, digits[k]) if k in digits else v for k, v in row.items()} for row in table]
    return table, {col: st.column_config.TextColumn(alignment="right") for col in digits}


def fig(figure):
    """A lesion_core.plots figure with its texts in the current language."""
    return i18n.figure(figure, language())
