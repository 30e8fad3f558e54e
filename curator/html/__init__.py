"""One small HTML kit: Jinja2 page templates (``templates/``) and inline SVG charts (:mod:`curator.html.charts`).

Pages extend ``base.html`` (the CSS, heading, footer with the version) and import ``_macros.html``
(tables, metric cells, chat turns).  Every page is one self-contained file: inline CSS and SVG, no
script, no external URL.  The Jinja2 environment is built on first use (importing this module does
nothing): autoescaping on, and an undefined name is an error (``StrictUndefined``), never an empty string.

>>> render("page.html", title="t", rows=[...])   # doctest: +SKIP
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["environment", "fixed", "is_digest", "num", "render", "write_page"]


def num(x: Any) -> Any:
    """Counts with thousands separators, floats to 4 significant digits; anything else unchanged."""
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, int):
        return f"{x:,}"
    return x


def fixed(x: Any, digits: int = 3, signed: bool = False) -> str:
    """A number with ``digits`` decimals (``+`` sign when ``signed``); ``-`` for a missing or NaN value."""
    if isinstance(x, bool) or not isinstance(x, int | float) or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def is_digest(x: Any) -> bool:
    """A sha256 hex digest (example and snapshot ids): shown shortened, the full id in the tooltip."""
    return isinstance(x, str) and len(x) == 64 and all(ch in "0123456789abcdef" for ch in x)


def _finalize(value: Any) -> Any:
    return "" if value is None else value


@cache
def environment() -> Environment:
    """The kit's Jinja2 environment (built once, on first use)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    from curator import __version__

    env = Environment(
        loader=PackageLoader("curator.html", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=num, fixed=fixed, fmt=format)
    env.tests["digest"] = is_digest
    env.globals["curator_version"] = __version__
    return env


def render(template_name: str, /, **context: Any) -> str:
    """Render ``templates/<template_name>`` with ``context`` (text is escaped; charts come as safe markup)."""
    return environment().get_template(template_name).render(**context)


def write_page(path: str | Path, template_name: str, /, **context: Any) -> Path:
    """Render a page and write it to ``path`` (parent folders created, replaced atomically); return the path."""
    page = render(template_name, **context)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
