"""Sphinx configuration of the BLADE-FL toolkit's documentation (sphinx-build -W docs docs/_build/html).

Offline by design: no intersphinx, no remote images; the CLI reference comes from click (sphinx-click), the API
reference from the docstrings (autodoc), the pages are MyST markdown.
"""

from __future__ import annotations

import re
from pathlib import Path
from importlib.metadata import version as _version

project = "BLADE-FL toolkit"
author = "The BLADE-FL toolkit authors"
release = _version("bladefl")  # defined once, in pyproject.toml
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx_click",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = f"BLADE-FL toolkit {release}"
html_static_path: list[str] = []
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
#: Pages written beside this site that index.md lists by name: an entry whose page is not (yet) in docs/ is left out
#: of the toctree, so the site builds before they arrive; a page that is here but listed nowhere still fails the build.
OPTIONAL_PAGES = ("your-own-system", "verify", "audit", "kstar-api", "architecture")


def _leave_out_missing_pages(app, docname: str, source: list[str]) -> None:
    if docname != root_doc:
        return
    missing = {name for name in OPTIONAL_PAGES if not (Path(app.srcdir) / f"{name}.md").exists()}
    source[0] = "\n".join(line for line in source[0].split("\n") if line.strip() not in missing)


#: Inline literals (``...``), left as they are.
_LITERAL = re.compile(r"(``.+?``)")


def _plain(line: str, chars: str) -> str:
    """``line`` with each of ``chars`` outside inline literals escaped: |D_i| is a set's size and K* a star, not
    reStructuredText substitution or emphasis."""
    parts = _LITERAL.split(line)
    for i in range(0, len(parts), 2):
        for c in chars:
            parts[i] = re.sub(rf"(?<!\\){re.escape(c)}", rf"\\{c}", parts[i])
    return "".join(parts)


def _plain_help(app, ctx, lines: list[str]) -> None:
    lines[:] = [_plain(line, "*|") for line in lines]


def _plain_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = [_plain(line, "|") for line in lines]


def setup(app):
    for part in ("description", "options", "arguments", "epilog"):
        app.connect(f"sphinx-click-process-{part}", _plain_help)
    app.connect("autodoc-process-docstring", _plain_docstring)
    app.connect("source-read", _leave_out_missing_pages)
