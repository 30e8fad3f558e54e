"""``curator review``: the review web app (a thin wrapper over :mod:`curator.review.app`)."""

from __future__ import annotations

import getpass
import os

import click

from curator.cli.kit import log, workspace

__all__ = ["review_cmd"]


def _default_reviewer() -> str:
    try:
        return os.environ.get("CURATOR_REVIEWER") or getpass.getuser() or "reviewer"
    except (KeyError, OSError):
        return "reviewer"


@click.command("review")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --token.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option("--reviewer", metavar="NAME", help="Whose decisions and ratings these are (env CURATOR_REVIEWER; "
              "default: the login name).")
@click.option("--token", envvar="CURATOR_REVIEW_TOKEN", metavar="T",
              help="Require 'Authorization: Bearer T' (or opening a page once with ?token=T); env CURATOR_REVIEW_TOKEN.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="warning",
              show_default=True, help="uvicorn's log level (no access log).")
@click.pass_context
def review_cmd(ctx: click.Context, host: str, port: int, reviewer: str | None, token: str | None,
               log_level: str) -> None:
    """Review examples, rate a run's answers and compare two runs blind, in the browser.

    Examples: accept (a), reject with a reason (r) or edit (e) -- decisions `curator restore
    review_reject` / `restore edited` undo; an edit becomes a new example that passes the dedup and
    leakage gates.  Answers: rate an evaluation's answers 1-5 with a note.  A/B: choose between two
    evaluations' answers to the same prompt; each choice is a preference pair for DPO.  The
    workspace is opened only for each click, so other commands keep working.

    \b
    curator review
    curator review --reviewer ann --port 9000
    CURATOR_REVIEW_TOKEN=... curator review --host 0.0.0.0
    """
    from curator.review.app import ReviewConfig, serve

    cfg = ReviewConfig(reviewer=reviewer or _default_reviewer(), token=token or None, host=host, port=port)
    serve(workspace(ctx), cfg, log, log_level=log_level)
