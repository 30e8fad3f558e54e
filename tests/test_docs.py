"""The manual keeps up with the code: every command has an example and a CLI reference section.

* Every command (not group) of ``curator`` appears as ``curator NAME`` somewhere in ``docs/*.md``,
  the generated CLI reference not counted: a new command comes with its documentation.
* The CLI reference page (``docs/cli.md``, a mkdocs-click block) renders a section for every
  command and group: checked by rendering that page with the real extension (a second), and in a
  full ``mkdocs build --strict`` with no warning (about 10 s), which also checks the Python API page.
* The README stays a short front door whose links point at files that exist.
* ``benchmarks/run_all.py`` keeps the sections of earlier runs in a partial run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from curator.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI_PAGE = DOCS / "cli.md"


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, cmd in sorted(group.commands.items()):
        if cmd.hidden:
            continue
        full = f"{prefix}{name}"
        out.append((full, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, full + " "))
    return out


COMMANDS = _commands(main)


def _slug(path: str) -> str:
    """The heading id mkdocs-click gives a command (with attr_list): ``curator-feedback-ingest``."""
    return "curator-" + path.replace(" ", "-")


def _mkdocs_config() -> dict:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def test_every_command_has_an_example_in_the_docs() -> None:
    pages = {p.name: p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")) if p != CLI_PAGE}
    text = "\n".join(pages.values())
    missing = [name for name, cmd in COMMANDS if not isinstance(cmd, click.Group)
               and not re.search(rf"curator {re.escape(name)}(?![\w-])", text)]
    assert not missing, (
        "no example in docs/*.md (outside the CLI reference) of: "
        + ", ".join(f"`curator {m}`" for m in missing)
    )


def test_cli_page_is_generated_from_main() -> None:
    text = CLI_PAGE.read_text(encoding="utf-8")
    assert "::: mkdocs-click" in text
    assert re.search(r"^\s+:module: curator\.cli$", text, re.M)
    assert re.search(r"^\s+:command: main$", text, re.M)
    assert re.search(r"^\s+:prog_name: curator$", text, re.M)
    cfg = _mkdocs_config()
    assert "mkdocs-click" in cfg["markdown_extensions"] and "attr_list" in cfg["markdown_extensions"]
    nav = yaml.safe_dump(cfg["nav"])
    for page in ("cli.md", "api.md", "index.md"):
        assert page in nav, f"{page} is not in the nav of mkdocs.yml"


def test_cli_reference_renders_every_command() -> None:
    markdown = pytest.importorskip("markdown")
    pytest.importorskip("mkdocs_click")
    html = markdown.Markdown(extensions=["attr_list", "toc", "tables", "mkdocs-click"]).convert(
        CLI_PAGE.read_text(encoding="utf-8"))
    ids = set(re.findall(r'<h\d id="([^"]+)"', html))
    missing = [name for name, _ in COMMANDS if _slug(name) not in ids]
    assert not missing, f"missing from the CLI reference: {missing}"
    assert "curator" in ids
    # the options of a command are there too, not only its heading
    assert "--prompt-column" in html and "--fail-on-regression" in html


def test_site_builds_strict_with_every_command(tmp_path: Path) -> None:
    """The whole site, as `make docs` builds it, into a temporary folder (about 10 s on 2 cores)."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    html = (site / "cli" / "index.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'<h\d id="([^"]+)"', html))
    assert not [name for name, _ in COMMANDS if _slug(name) not in ids]
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("curator.data.ingest.ingest_file", "curator.quality.dedup.dedup", "evals.runner.evaluate",
                 "curator.loop.rounds.run_round", "trainer.api.train"):
        assert name in api, f"{name} is missing from the Python API page"


def test_readme_is_a_short_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 16_000, "README.md is meant to stay at about 15 KB: move detail to docs/"
    for cmd in ("make demo", "make test", "pip install -e .", "pip install -e '.[all]'"):
        assert cmd in readme
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert any(link.startswith("docs/") for link in links)
    broken = [link for link in links if not re.match(r"[a-z]+://", link) and not (ROOT / link).exists()]
    # benchmarks/RESULTS.md is written by `make bench`; it is checked in, so it exists too
    assert not broken, f"README links to missing files: {broken}"


def test_docs_pages_have_one_title_and_no_merge_script() -> None:
    for page in DOCS.glob("*.md"):
        lines = page.read_text(encoding="utf-8").splitlines()
        titles, in_code = [], False
        for line in lines:
            if line.startswith("```"):
                in_code = not in_code
            elif not in_code and line.startswith("# "):
                titles.append(line)
        assert len(titles) == 1, f"{page.name}: one '# ' title expected, found {titles}"
    assert not (ROOT / "scripts" / "merge_docs.py").exists()


def _load_run_all():
    spec = importlib.util.spec_from_file_location("bench_run_all", ROOT / "benchmarks" / "run_all.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run_all"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_bench_results_keep_earlier_sections_in_a_partial_run() -> None:
    ra = _load_run_all()
    old = ra.render([ra.Result("pii", "python benchmarks/pii.py", 0, 3.5, "PASS: pii\n", "", "2026-12-01 10:00 UTC",
                               "aaaa"),
                     ra.Result("ingest", "python benchmarks/ingest.py", 1, 9.0, "ratio 4.1 ```x```\n", "Traceback\n",
                               "2026-12-01 10:01 UTC", "aaaa")],
                    None, ra.QUICK)
    assert "PASS: pii" in old and "exit status 1 (FAILED)" in old and "Traceback" in old
    assert "````text" in old  # a fence longer than the backticks in the output
    new = ra.render([ra.Result("pii", "python benchmarks/pii.py", 0, 3.1, "PASS: pii again\n", "",
                               "2026-12-02 10:00 UTC", "bbbb")], old, ra.QUICK)
    assert "PASS: pii again" in new and "PASS: pii\n" not in new
    assert "ratio 4.1" in new and "2026-12-01 10:01 UTC" in new      # the ingest section is kept, with its date
    assert "from earlier runs" in new
    assert new.index("## ingest") < new.index("## pii")                 # in the order of `make bench`
    machine = ra.machine()
    assert machine["cores"] and machine["memory"]


def test_bench_runner_lists_the_makefile_benchmarks() -> None:
    ra = _load_run_all()
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "benchmarks/run_all.py" in makefile
    for name in ra.QUICK:
        assert (ROOT / "benchmarks" / f"{name}.py").is_file()
    assert shutil.which("git") is None or ra.git_commit()
