"""The dashboard's single page, from the static files shipped in :file:`shared/dashboard/static/`.

``index.html`` is the page; it links ``style.css`` and ``app.js`` (so the folder opens as is in a browser). When
the module is loaded, both are written into the page inline: one answer, no external file, and the server's
Content-Security-Policy allows exactly this style sheet and script, by the SHA-256 hashes computed here from
the files. Every value from the stores is written with ``textContent`` (never parsed as HTML).
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources

_STATIC = resources.files("shared.dashboard").joinpath("static")
_STYLE_LINK = '<link rel="stylesheet" href="style.css">'
_SCRIPT_LINK = '<script src="app.js"></script>'


def _read(name: str) -> str:
    return _STATIC.joinpath(name).read_text(encoding="utf-8")


def _inline(page: str, link: str, element: str) -> str:
    """``page`` with its one ``link`` replaced by ``element`` (a missing or repeated link is a packaging bug)."""
    if page.count(link) != 1:
        raise RuntimeError(f"static/index.html must contain {link} exactly once")
    return page.replace(link, element)


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


# Each opens with a line break after its tag, as the page always has (the hashes cover the exact text).
STYLE = "\n" + _read("style.css")
SCRIPT = "\n" + _read("app.js")

CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src '{_sha256(SCRIPT)}'; style-src '{_sha256(STYLE)}'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

HTML = _inline(
    _inline(_read("index.html"), _STYLE_LINK, f"<style>{STYLE}</style>"),
    _SCRIPT_LINK,
    f"<script>{SCRIPT}</script>",
)
