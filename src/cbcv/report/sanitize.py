"""The second line of defence for report pages: after rendering, every page is made inert and
self-contained. Scripts, frames, forms, event-handler attributes and ``javascript:``-style links
are removed, and nothing is loaded from outside the page: images are inline (``data:image``),
and no other ``src``, stylesheet or CSS ``url()`` is kept. The pages need no JavaScript: tables and figures are static HTML and PNG, and no page
uses TeX, so MathJax and require.js (which nbconvert loads from a CDN) are dropped with the rest.

Text from configs and data files is escaped where it is written (:mod:`cbcv.core.escape`);
this pass catches anything that slipped through, so at worst a stray tag shows as missing text,
never as running code.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Tag

#: Elements that run code, embed other documents, submit data or change how URLs resolve.
_DROP_TAGS = (
    "script", "noscript", "iframe", "frame", "frameset", "object", "embed", "applet", "base",
    "form", "input", "button", "textarea", "select", "link", "portal", "template",
)
#: Attributes that hold a URL.
_URL_ATTRS = frozenset({
    "href", "src", "srcset", "action", "formaction", "xlink:href", "poster", "background", "data",
    "cite", "longdesc", "ping", "manifest", "lowsrc", "dynsrc", "codebase",
})
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
_INLINE_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,", re.IGNORECASE)
_CSS_URL = re.compile(r"@import[^;]*;?|url\s*\(\s*(['\"]?)(?!data:|#)[^)]*\)|expression\s*\(", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")


def _url_ok(tag: Tag, attr: str, value: str) -> bool:
    """Fragments anywhere; inline images as ``<img src>``; as a link an investor may click
    (``<a href>``), a relative address or http(s)/mailto. Nothing else loads or links."""
    v = _CONTROL.sub("", value).lower()
    if v.startswith("#"):
        return True
    if tag.name == "img" and attr == "src":
        return _INLINE_IMAGE.match(v) is not None
    if tag.name != "a" or attr != "href":
        return False
    scheme = _SCHEME.match(v)
    if scheme is None:
        return not v.startswith("//")
    return scheme.group(1) in ("http", "https", "mailto")


def _attribute_ok(tag: Tag, name: str, text: str) -> bool:
    if name.startswith("on") or name in ("srcdoc", "formaction"):
        return False
    if name in _URL_ATTRS:
        return _url_ok(tag, name, text)
    return not (name == "style" and _CSS_URL.search(text))


def _clean_attributes(tag: Tag) -> None:
    if "http-equiv" in (a.lower() for a in tag.attrs):
        tag.decompose()
        return
    for attr in list(tag.attrs):
        value = tag.attrs[attr]
        text = " ".join(value) if isinstance(value, list) else str(value)
        if not _attribute_ok(tag, attr.lower(), text):
            del tag.attrs[attr]


def _clean_style(tag: Tag) -> None:
    css = tag.string or ""
    cleaned = _CSS_URL.sub("", css)
    if cleaned != css:
        tag.string = cleaned


def sanitize_page(page: str) -> str:
    """``page`` with everything active or external removed (see the module docstring)."""
    soup = BeautifulSoup(page, "html.parser")
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed:
            continue
        if tag.name == "style":
            _clean_style(tag)
        _clean_attributes(tag)
    return str(soup)
