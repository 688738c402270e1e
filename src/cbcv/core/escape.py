"""Escaping of text that comes from a config or a data file (company name, currency, scenario
names, notes, file and column names) before it reaches a report page: in Markdown, in HTML and
in matplotlib text. Every such string is shown as written, never interpreted as markup."""

from __future__ import annotations

import html
import re

#: HTML's special characters, as character references (understood by Markdown too).
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}
#: The rest of ASCII punctuation: CommonMark lets a backslash make each of them literal.
_MARKDOWN_PUNCTUATION = frozenset("!#$%()*+,-./:;=?@[\\]^_`{|}~")
_WHITESPACE = re.compile(r"\s+")


def _md_char(c: str) -> str:
    if c in _ENTITIES:
        return _ENTITIES[c]
    return "\\" + c if c in _MARKDOWN_PUNCTUATION else c


def md(value: object) -> str:
    """``value`` as literal inline Markdown text: no emphasis, link, code span, heading, list,
    raw HTML or math can come out of it (whitespace runs, newlines included, become one space)."""
    text = _WHITESPACE.sub(" ", str(value)).strip()
    return "".join(_md_char(c) for c in text)


def md_code(value: object) -> str:
    """``value`` shown as code inside Markdown: an inline ``<code>`` element around :func:`md`'s
    literal text (a backtick in a file name cannot close a Markdown code span that isn't there)."""
    return f"<code>{md(value)}</code>"


def html_text(value: object) -> str:
    """``value`` as HTML text or attribute content (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def plot_text(value: object) -> str:
    """``value`` as literal matplotlib text: every ``$`` escaped, so no pair of them starts
    mathtext (matplotlib shows ``\\$`` as ``$`` in plain text)."""
    return str(value).replace("$", r"\$")
