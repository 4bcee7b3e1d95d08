"""Which page strings are not translated: `python -m lesion_core.i18n.check [--wrap] [--add]`.

Lists (1) text literals and f-strings handed to Streamlit elements in app.py and app_pages/
without _() around them, and (2) messages that a catalogue lacks: those the pages use through
_("..."), and those lesion_core marks N_("...") (texts it renders in English that pages show
through lang.rendered: status messages, errors, help texts); a plural message (ngettext / N_n) needs
its plural entry, and a fuzzy or empty msgstr counts as missing.
--wrap first puts _() around every plain literal it would list (and imports _ where a page
lacks it); f-strings are left listed, for a person to turn into _("... {name}", name=...).
--add appends the missing messages to each catalogue with an empty msgstr, ready to fill in
(an empty msgstr still shows English, and tests/test_i18n.py fails until it is filled).
Exit status 1 when anything is listed. A line ending in `# i18n: skip` is never listed.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from lesion_core import i18n

REPO = Path(__file__).resolve().parents[2]
# Streamlit calls whose text arguments the user reads (first positional argument, and these keywords).
ELEMENTS = {
    "title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success", "toast",
    "text", "write", "button", "download_button", "page_link", "link_button", "radio", "selectbox",
    "multiselect", "checkbox", "toggle", "slider", "select_slider", "number_input", "text_input",
    "text_area", "file_uploader", "color_picker", "date_input", "metric", "expander", "tabs", "spinner",
    "popover", "form_submit_button", "status", "Page", "progress", "set_page_config",
}
TEXT_KEYWORDS = {"label", "help", "placeholder", "title", "text", "caption", "page_title"}
WORDS = re.compile(r"[A-Za-z]{2,}")
TRANSLATORS = {"_", "translate", "N_"}
PLURAL_TRANSLATORS = {"ngettext", "N_n", "translate_plural"}  # (singular, plural, n): ngettext-style


def page_files() -> list[Path]:
    """The files whose strings users read: app.py and app_pages/*.py."""
    return [REPO / "app.py", *sorted((REPO / "app_pages").glob("*.py"))]


def core_files() -> list[Path]:
    """lesion_core's modules, whose N_("...") messages reach the pages."""
    return sorted(p for p in (REPO / "lesion_core").rglob("*.py") if "i18n" not in p.parts)


@dataclass
class Finding:
    path: Path
    line: int
    text: str
    plural: str | None = None  # the plural msgid of an ngettext-style message

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}: {self.text}"


def _literal_text(node) -> str | None:
    """The readable text of a str literal or f-string node (f-string values as {}), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


PATH_FIRST = {"Page", "page_link", "switch_page"}  # their first argument is a page file, not text


def _text_arguments(call: ast.Call) -> list:
    first = [] if _call_name(call) in PATH_FIRST else call.args[:1]
    args = first + [k.value for k in call.keywords if k.arg in TEXT_KEYWORDS]
    if _call_name(call) == "tabs" and call.args and isinstance(call.args[0], (ast.List, ast.Tuple)):
        args = list(call.args[0].elts)
    return args


def unwrapped(paths=None) -> list[Finding]:
    """Text literals handed to Streamlit elements without _() (see ELEMENTS, TEXT_KEYWORDS)."""
    found = []
    for path in paths or page_files():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not (isinstance(node, ast.Call) and _call_name(node) in ELEMENTS):
                continue
            for arg in _text_arguments(node):
                text = _literal_text(arg)
                if text and WORDS.search(text) and not lines[arg.lineno - 1].rstrip().endswith("# i18n: skip"):
                    found.append(Finding(path, arg.lineno, text))
    return found


def wrap_literals(paths=None) -> int:
    """Put _() around the plain text literals unwrapped() lists, in place; returns how many.
    Byte offsets from the AST, applied from the end of each file, so lines stay put."""
    done = 0
    for path in paths or page_files():
        source = path.read_text(encoding="utf-8")
        data = source.encode("utf-8")
        starts = [0]
        for line in source.splitlines(keepends=True):
            starts.append(starts[-1] + len(line.encode("utf-8")))
        spans = []
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and _call_name(node) in ELEMENTS:
                for arg in _text_arguments(node):
                    if (isinstance(arg, ast.Constant) and isinstance(arg.value, str) and WORDS.search(arg.value)
                            and not source.splitlines()[arg.lineno - 1].rstrip().endswith("# i18n: skip")):
                        spans.append((starts[arg.lineno - 1] + arg.col_offset,
                                      starts[arg.end_lineno - 1] + arg.end_col_offset))
        for begin, end in sorted(spans, reverse=True):
            data = data[:begin] + b"_(" + data[begin:end] + b")" + data[end:]
        if spans:
            text = data.decode("utf-8")
            if not re.search(r"^from app_pages\.lang import .*\b_\b", text, re.M) and path.name != "lang.py":
                text = _add_import(text)
            path.write_text(text, encoding="utf-8")
            done += len(spans)
    return done


def _add_import(text: str) -> str:
    """`from app_pages.lang import _` after the page's last top-level import."""
    tree = ast.parse(text)
    last = max((n.end_lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))), default=0)
    lines = text.splitlines(keepends=True)
    return "".join(lines[:last]) + "from app_pages.lang import _\n" + "".join(lines[last:])


def rebinds_underscore(paths=None) -> list[Finding]:
    """Places that assign to `_` (a throwaway name): on a page that shadows the translator."""
    found = []
    for path in paths or page_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # A comprehension's variables are its own: `for w, _ in sizes` there shadows nothing outside.
        local = {id(n) for c in ast.walk(tree) if isinstance(c, ast.comprehension) for n in ast.walk(c.target)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store)
                    and id(node) not in local):
                found.append(Finding(path, node.lineno, "assigns _ (rename it, e.g. _spare)"))
    return found


def used_messages(paths=None) -> dict[str, Finding]:
    """msgid -> where it is first used, for every _("...") / translate("...") / N_("...") with a
    literal id, in the pages and lesion_core; a plural message (ngettext / N_n("singular", "plural",
    n)) by its singular msgid, its Finding's plural naming the plural msgid."""
    used = {}
    for path in paths or page_files() + core_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = _call_name(node) if isinstance(node, ast.Call) else None
            texts = [_constant(a) for a in node.args[:2]] if name in PLURAL_TRANSLATORS else \
                [_constant(node.args[0]) if node.args else None, None] if name in TRANSLATORS else []
            if texts and texts[0] is not None and (name in TRANSLATORS or texts[1] is not None):
                used.setdefault(texts[0], Finding(path, node.args[0].lineno, texts[0], texts[1]))
    return used


def _constant(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def registry_messages() -> dict[str, Finding]:
    """msgid -> where, for the texts the registries describe themselves with and pages show
    (transform and parameter help, many taken from docstrings; model descriptions)."""
    from lesion_core import models, transforms  # torch: imported only when the registries are checked

    found = {}
    for module, texts in ((transforms, [t for info in transforms.REGISTRY.values()
                                        for t in (info.help, *(p.help for p in info.params))]),
                          (models, [entry.description for entry in models.MODELS.values()])):
        path = Path(module.__file__)
        for text in texts:
            if text:
                found.setdefault(text, Finding(path, 1, text))
    return found


def missing(lang: str, paths=None) -> list[Finding]:
    """Messages the pages use (and, when no paths are given, lesion_core's N_ messages and the
    registries' texts) that lang's catalogue has no translation for: no entry, an empty msgstr
    (or plural form) or a fuzzy one, a plural message without its plural entry."""
    table, plural = i18n.catalogue(lang), i18n.plurals(lang)
    used = used_messages(paths) if paths else used_messages() | registry_messages()
    return [where for msgid, where in used.items()
            if (msgid not in table if where.plural is None else plural.get(msgid, (None,))[0] != where.plural)]


def _po_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def add_stubs(lang: str, findings: list[Finding]) -> int:
    """Append msgid/empty msgstr entries for findings to lang's catalogue; returns how many."""
    path = i18n.catalogue_path(lang)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    present = set(re.findall(r'^msgid (".*")$', text, re.M))
    new = [f for f in findings if _po_quote(f.text) not in present]
    if new:
        stubs = "".join(f"\n#: {f.path.relative_to(REPO)}:{f.line}\nmsgid {_po_quote(f.text)}\n" + (
            "msgstr \"\"\n" if f.plural is None else f"msgid_plural {_po_quote(f.plural)}\nmsgstr[0] \"\"\nmsgstr[1] \"\"\n")
            for f in new)
        path.write_text(text.rstrip("\n") + "\n" + stubs, encoding="utf-8")
    return len(new)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    problems = 0
    if "--wrap" in argv:
        print(f"wrapped {wrap_literals()} literal(s) in _()")
    for finding in unwrapped():
        print(f"not wrapped in _(): {finding}")
        problems += 1
    for finding in rebinds_underscore():
        print(f"shadows the translator: {finding}")
        problems += 1
    for lang in i18n.LANGUAGES:
        if lang == i18n.DEFAULT:
            continue
        absent = missing(lang)
        for finding in absent:
            print(f"missing in {lang}.po: {finding}")
        problems += len(absent)
        if "--add" in argv and absent:
            print(f"added {add_stubs(lang, absent)} empty entries to {i18n.catalogue_path(lang).name}: fill in msgstr")
    print(f"{problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
