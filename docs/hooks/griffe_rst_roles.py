"""A Griffe extension for the Python API page: reStructuredText bits of docstrings made Markdown.

The docstrings use Sphinx roles (:func:`dedup`, :class:`~curator.errors.InputError`) and ``::``
literal blocks; mkdocstrings renders Markdown, where those would show up verbatim. A role becomes
a code span (``~a.b.c`` shows ``c``, as Sphinx does); ``::`` before an indented block is dropped,
so the block renders as code. Loaded by mkdocs.yml (``extensions:`` of the python handler); not
part of the package.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|data|attr|exc|obj|const|type):`(~?)([^`]+)`")
LONE_LITERAL = re.compile(r"(?m)^[ \t]*::[ \t]*$")
TRAILING_LITERAL = re.compile(r"(?m)(\S)::[ \t]*$")


def _code(m: re.Match[str]) -> str:
    name = m.group(2).strip()
    if m.group(1):
        name = name.rsplit(".", 1)[-1]
    return f"`{name}`"


class RstRoles(Extension):
    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = ROLE.sub(_code, obj.docstring.value)
            text = LONE_LITERAL.sub("", text)
            obj.docstring.value = TRAILING_LITERAL.sub(r"\1:", text)
