"""Messages that stay messages after formatting: English text that remembers its msgid and values.

lesion_core writes English for the command line and the run folder, and pages show the same
texts in the page's language. A Message is both: a `str` (the English text, so printing,
comparing, logging and str(exc) behave as before) that also carries the msgid it was formatted
from and the values it was formatted with. A page translates the msgid and formats the
translation with the values (themselves translated when they are messages): no English text
is ever matched back against the catalogue.

    N_("weights file not found: {path}").format(path=p)   # a Message: English text, msgid, {"path": p}
    N_n("{n} unreadable line skipped", "{n} unreadable lines skipped", n).format(n=n)   # a plural
    join("\\n", [title, report])                              # lines (or parts) that stay messages

Messages pickle (DataLoader workers, torchrun, multiprocessing) and turn into JSON and back
(to_json / from_json: status.json keeps the msgid and values next to the English text).
"""

from __future__ import annotations

import math
import numbers

# A text read back from a file is untrusted: from_json gives up past these.
MAX_DEPTH = 8
MAX_PARAMS = 400
MAX_TEXT = 4000


def _english_plural(n) -> bool:
    return not (isinstance(n, int) and n == 1)


class Message(str):
    """English text (the str itself) with the msgid, plural msgid and values it came from.

    msgid: the catalogue's key (the English template); plural: the plural msgid of an
    ngettext-style message, n its count; params: the values .format() was given.
    """

    def __new__(cls, text: str, msgid: str | None = None, params: dict | None = None,
                plural: str | None = None, n: int | None = None):
        self = super().__new__(cls, text)
        self.msgid = str.__str__(text) if msgid is None else msgid
        self.params = None if params is None else dict(params)  # None: a template, not formatted yet
        self.plural = plural
        self.n = n
        return self

    def __str__(self):  # str(exc) of an error raised with a Message gives the Message back
        return self

    def __repr__(self) -> str:
        return f"Message({str.__repr__(self)}, msgid={self.msgid!r})"

    def __reduce__(self):
        return (Message, (str.__str__(self), self.msgid, self.params, self.plural, self.n))

    def format(self, *args, **params):
        """The English text formatted, as a Message that keeps the msgid and params."""
        if args:  # positional values have no name to translate them by: plain text
            return str.format(str.__str__(self), *args, **params)
        return Message(str.format(str.__str__(self), **params), self.msgid, params, self.plural, self.n)

    def format_map(self, mapping):
        return self.format(**mapping)

    def removeprefix(self, prefix: str):
        """Without prefix; concat(prefix, message).removeprefix(prefix) is the message itself."""
        if not self.startswith(prefix):
            return self
        if self.msgid == "{p0}{p1}" and self.params and self.params.get("p0") == prefix:
            return self.params["p1"]
        return str.removeprefix(str.__str__(self), prefix)


def plain(value):
    """value with every Message in it (in dicts, lists and tuples) as the plain str of its English
    text: for files that must hold plain data only, such as a checkpoint torch.load(weights_only=True)
    reads back (it refuses any str subclass), where class names from a dataset layout may be messages."""
    if isinstance(value, Message):
        return str.__str__(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def N_(msgid: str) -> Message:
    """Mark an English message that lesion_core renders and a page may show. The text stays
    English (the CLI and the run folder keep English); `python -m lesion_core.i18n.check`
    requires a translation of msgid, and a page translates it by its msgid (i18n.localize)."""
    return Message(msgid)


def N_n(singular: str, plural: str, n: int) -> Message:
    """An ngettext-style message: the English singular or plural for n (format it with its
    values as N_'s); a page picks the form of its own language's plural rule for n."""
    return Message(plural if _english_plural(n) else singular, singular, None, plural, n)


def join(sep: str, parts) -> Message:
    """parts joined by sep (lines of a report, the parts of a status line, a prefix and a
    message), as a Message whose parts are translated one by one."""
    parts = list(parts)
    msgid = sep.replace("{", "{{").replace("}", "}}").join(f"{{p{i}}}" for i in range(len(parts)))
    return Message(str.__str__(sep).join(str.__str__(p) for p in parts), msgid,
                   {f"p{i}": p for i, p in enumerate(parts)})


def concat(*parts) -> Message:
    """parts one after the other, as join("", parts)."""
    return join("", parts)


# ---------------------------------------------------------------- to JSON and back


def _json_value(value, depth: int):
    if isinstance(value, Message):
        return to_json(value, depth + 1)
    if isinstance(value, BaseException) and value.args and isinstance(value.args[0], Message):
        return to_json(value.args[0], depth + 1)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, numbers.Integral):  # numpy integers
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(value):  # numpy numbers too
        return float(value)
    return str.__str__(str(value))  # NaN and infinity as their text: strict JSON has none


def to_json(message: Message, depth: int = 0) -> dict:
    """{"id"[, "params"][, "plural", "n"]} of a message (no params: a template, never formatted),
    its values JSON too (nested messages as such objects, other values as their text)."""
    out = {"id": message.msgid}
    if message.params is not None:
        out["params"] = {k: _json_value(v, depth) for k, v in message.params.items()} if depth < MAX_DEPTH else {}
    if message.plural is not None:
        out |= {"plural": message.plural, "n": message.n}
    return out


class _Invalid(Exception):
    pass


def _from_value(value, depth: int, budget: list):
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise _Invalid
    if isinstance(value, dict):
        return _build(value, None, depth + 1, budget)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str) and len(value) <= MAX_TEXT:
        return value
    raise _Invalid


def _build(tree, text, depth: int, budget: list) -> Message:
    if not isinstance(tree, dict) or set(tree) - {"id", "params", "plural", "n"}:
        raise _Invalid
    msgid, params, plural, n = tree.get("id"), tree.get("params"), tree.get("plural"), tree.get("n")
    if not (isinstance(msgid, str) and len(msgid) <= MAX_TEXT and isinstance(params, (dict, type(None)))
            and (plural is None or (isinstance(plural, str) and len(plural) <= MAX_TEXT
                                    and isinstance(n, int) and not isinstance(n, bool)))):
        raise _Invalid
    values = None if params is None else {}
    for key, value in (params or {}).items():
        if not (isinstance(key, str) and key.isidentifier()):
            raise _Invalid
        values[key] = _from_value(value, depth, budget)
    template = msgid if plural is None or not _english_plural(n) else plural
    if text is None:  # a nested message: its English as the writer rendered it
        try:
            text = template if values is None else template.format(**values)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError):
            raise _Invalid from None
    return Message(text, msgid, values, plural, n if plural is not None else None)


def from_json(tree, text: str | None = None) -> Message | None:
    """The Message a to_json() tree describes, whose English is text (the stored English) when
    given; None when the tree is not one to_json() writes (a damaged or edited file)."""
    try:
        return _build(tree, text, 0, [MAX_PARAMS])
    except _Invalid:
        return None
