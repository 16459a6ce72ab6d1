"""The dashboard's page is assembled from the package's static files, with a policy that allows exactly them."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from shared.dashboard.page import CONTENT_SECURITY_POLICY, HTML

STATIC = resources.files("shared.dashboard").joinpath("static")


def _hash(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def test_the_style_sheet_and_the_script_are_inline_and_allowed_by_hash() -> None:
    for tag, name in (("style", "style.css"), ("script", "app.js")):
        (inline,) = re.findall(rf"<{tag}>(.*?)</{tag}>", HTML, re.DOTALL)
        assert inline.strip() == STATIC.joinpath(name).read_text(encoding="utf-8").strip()
        assert f"{tag}-src 'sha256-{_hash(inline)}'" in CONTENT_SECURITY_POLICY
    assert "style.css" not in HTML and "app.js" not in HTML  # nothing is fetched besides the page


def test_the_page_is_the_static_index_with_nothing_else_changed() -> None:
    index = STATIC.joinpath("index.html").read_text(encoding="utf-8")
    without_inline = re.sub(r"<(style|script)>.*?</\1>", "", HTML, flags=re.DOTALL)
    linked = index.replace('<link rel="stylesheet" href="style.css">', "").replace(
        '<script src="app.js"></script>', ""
    )
    assert without_inline == linked
    assert HTML.startswith("<!doctype html>") and "default-src 'none'" in CONTENT_SECURITY_POLICY
