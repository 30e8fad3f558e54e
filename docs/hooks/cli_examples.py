"""MkDocs hook: the example lines of a command's help become a code block in the CLI reference.

The commands' help texts end with example lines kept apart by click's ``\\b`` marker
(``curator audit --html report.html``); mkdocs-click drops the marker, and Markdown would then run
the examples together into one paragraph. A Markdown preprocessor that runs right after
mkdocs-click's (priority 141) fences every run of lines starting with ``curator `` that begins a
paragraph, on pages that mkdocs-click generated (those with a ``**Usage:**`` line). Loaded by
``hooks:`` in mkdocs.yml; not part of the package.
"""

from __future__ import annotations

from typing import Any

from markdown import Markdown
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor

PREFIX = "curator "


class _Examples(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        if "**Usage:**" not in lines:
            return lines
        out: list[str] = []
        fence = False
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.lstrip().startswith("```"):
                fence = not fence
            elif not fence and line.startswith(PREFIX) and (not out or not out[-1].strip()):
                j = i
                while j < len(lines) and lines[j].startswith(PREFIX):
                    j += 1
                out += ["```text", *lines[i:j], "```"]
                i = j
                continue
            out.append(line)
            i += 1
        return out


class CliExamples(Extension):
    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 (Markdown's API)
        md.preprocessors.register(_Examples(md), "curator_cli_examples", 140)


def on_config(config: Any, **kwargs: Any) -> Any:
    config.markdown_extensions.append(CliExamples())
    return config
