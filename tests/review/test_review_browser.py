"""The review app in a real headless Chromium (Debian's ``chromium`` through Playwright's ``executable_path``):
keyboard reject and edit, three ratings, an A/B choice, all persisted across a reload; planted markup shows as
text; a POST without the CSRF token is refused.  Saves the screenshots of each queue that docs/review.md shows."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from review_helpers import EVAL_A, EVAL_B, XSS_IMG, XSS_SCRIPT

CHROMIUM = "/usr/bin/chromium"
IMG = Path(__file__).resolve().parents[2] / "docs" / "img"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} is missing: `make setup` installs it (apt-get install chromium)")


def _rows(ws: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with ws.connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_review_in_chromium(ws: Any, server: Any) -> None:
    from playwright.sync_api import sync_playwright

    from curator.review.store import ExampleFilter, is_swapped, list_examples

    IMG.mkdir(parents=True, exist_ok=True)
    queue = list_examples(ws, ExampleFilter(origin="seed"), limit=10)["examples"]
    xss = next(e for e in list_examples(ws, ExampleFilter(origin="import"), limit=10)["examples"]
               if "<script>" in e["messages"][0]["content"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            # the examples queue: j/k move the selection, Enter opens the selected example
            page.goto(server.url + "/examples?origin=seed")
            page.keyboard.press("j")
            page.keyboard.press("j")
            page.keyboard.press("k")
            assert page.locator("tr.row.sel").count() == 1
            page.screenshot(path=str(IMG / "review-examples.png"), full_page=True)
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert f"/examples/{queue[0]['id']}" in page.url and "pos=0" in page.url

            # reject with a reason, from the keyboard; the page moves on to the next example
            page.keyboard.press("r")
            page.keyboard.type("too vague to teach anything")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert f"/examples/{queue[1]['id']}" in page.url

            # edit the next one: e opens the turns, Ctrl+Enter saves; the page opens the new example
            page.keyboard.press("e")
            page.keyboard.press("Control+End")
            page.keyboard.type(" Then sign in again.")
            page.screenshot(path=str(IMG / "review-edit.png"), full_page=True)
            with page.expect_navigation():
                page.keyboard.press("Control+Enter")
            new_id = page.url.rsplit("/", 1)[1].split("?")[0]
            assert new_id != queue[1]["id"]
            assert "Then sign in again." in page.locator("#turns").inner_text()
            assert "edited" in page.locator("body").inner_text()

            # planted markup shows as text and runs nothing
            page.goto(server.url + f"/examples/{xss['id']}")
            turns = page.locator("#turns").inner_text()
            assert XSS_SCRIPT in turns and XSS_IMG in turns
            assert page.locator("#turns img").count() == 0 and page.locator("#turns script").count() == 0
            assert page.evaluate("window.__pwned === undefined")
            page.screenshot(path=str(IMG / "review-example.png"), full_page=True)

            # the answers queue: three ratings by key (the second with a note)
            page.goto(server.url + f"/answers?eval={EVAL_A}")
            page.screenshot(path=str(IMG / "review-answers.png"), full_page=True)
            with page.expect_navigation():
                page.keyboard.press("4")
            page.locator("#note").fill("right, but terse")
            page.locator("#note").press("Escape")
            with page.expect_navigation():
                page.keyboard.press("5")
            with page.expect_navigation():
                page.keyboard.press("2")

            # the A/B queue: choose A; B's planted markup is text here too
            page.goto(server.url + f"/ab?left={EVAL_A}&right={EVAL_B}")
            page.screenshot(path=str(IMG / "review-ab.png"), full_page=True)
            first_ab = page.evaluate("JSON.parse(document.getElementById('page-data').textContent).example_id")
            with page.expect_navigation():
                page.keyboard.press("a")

            # a POST without the CSRF token is refused, and changes nothing
            status = page.evaluate(
                """async (id) => (await fetch('/api/examples/' + id + '/decision', {method: 'POST',
                     headers: {'Content-Type': 'application/json'}, body: JSON.stringify({action: 'reject'})})).status""",
                xss["id"])
            assert status == 403

            # reload: everything is still there
            page.goto(server.url + f"/examples/{queue[0]['id']}")
            assert page.locator("#status").inner_text() == "excluded"
            assert "too vague to teach anything" in page.locator("#decisions").inner_text()
            page.goto(server.url + f"/examples/{queue[1]['id']}")
            assert page.locator("#status").inner_text() == "excluded"
            assert new_id in page.locator("body").inner_text() or new_id[:16] in page.locator("body").inner_text()
            page.goto(server.url + f"/answers?eval={EVAL_A}&pos=1")
            assert "your rating: 5" in page.locator("#rating").inner_text()
            assert page.locator("#note").input_value() == "right, but terse"
            page.goto(server.url + f"/ab?left={EVAL_A}&right={EVAL_B}&pos=0")
            assert "your choice: A" in page.locator("#choice").inner_text()
            assert errors == []
        finally:
            browser.close()

    # and in the database
    assert _rows(ws, "SELECT kind, reason, reviewer FROM decisions WHERE example_id = ? AND undone_at IS NULL",
                 [queue[0]["id"]]) == [("review_reject", "too vague to teach anything", "ann")]
    assert _rows(ws, "SELECT kind, other_id FROM decisions WHERE example_id = ?", [queue[1]["id"]]) == [("edited", new_id)]
    assert _rows(ws, "SELECT origin, parent_id, status FROM examples WHERE id = ?", [new_id]) == [
        ("edited", queue[1]["id"], "active")]
    ratings = _rows(ws, "SELECT rating, note FROM human_ratings WHERE eval_id = ? ORDER BY example_id", [EVAL_A])
    assert ratings == [(4, None), (5, "right, but terse"), (2, None)]
    expected = "right" if is_swapped(EVAL_A, EVAL_B, first_ab) else "left"
    assert _rows(ws, "SELECT choice FROM human_choices WHERE example_id = ?", [first_ab]) == [(expected,)]
    assert _rows(ws, "SELECT count(*) FROM decisions WHERE example_id = ?", [xss["id"]]) == [(0,)]
