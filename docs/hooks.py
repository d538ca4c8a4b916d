"""MkDocs hook (mkdocs.yml: hooks): ``<!-- api-modules: PACKAGE -->`` in a page becomes one
``::: PACKAGE.module`` block per module of that package (``base`` first, then by name), so a
module added to snnrun shows in the API reference without editing the page."""

from __future__ import annotations

import importlib
import pkgutil
import re

MARKER = re.compile(r"^<!-- api-modules: (\S+) -->$", re.M)


def package_modules(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    names = sorted(n for _, n, _ in pkgutil.iter_modules(pkg.__path__) if not n.startswith("_"))
    return [f"{package}.{n}" for n in sorted(names, key=lambda n: (n != "base", n))]


def expand(markdown: str) -> str:
    return MARKER.sub(lambda m: "\n\n".join(f"::: {mod}" for mod in package_modules(m.group(1))), markdown)


def on_page_markdown(markdown, page, config, files, **kwargs):
    return expand(markdown)
