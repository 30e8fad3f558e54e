"""The review app's HTTP API on a real uvicorn on 127.0.0.1: the JSON contract, 422 naming the field, 404s,
the CSRF token, the bearer token, the Host check, escaping, and the 503 of a locked workspace."""

from __future__ import annotations

import json
from typing import Any

import pytest
from review_helpers import EVAL_A, EVAL_B, XSS_IMG, XSS_SCRIPT, AppServer, ids_by


def test_examples_contract(server: Any, ws: Any) -> None:
    st, body, headers = server.request("GET", "/api/examples?origin=seed&limit=5&offset=5")
    assert st == 200 and body["total"] == 12 and len(body["examples"]) == 5
    assert set(body["examples"][0]) >= {"id", "messages", "origin", "task", "split", "status"}
    assert [e["id"] for e in body["examples"]] == ids_by(ws, "e.origin = 'seed'")[5:10]
    assert "script-src 'self'" in headers["content-security-policy"]


@pytest.mark.parametrize(("query", "field"), [("limit=0", "limit"), ("limit=abc", "limit"), ("offset=-3", "offset"),
                                              ("status=gone", "status"), ("split=dev", "split"), ("flag=x", "flag")])
def test_examples_bad_query_names_the_field(server: Any, query: str, field: str) -> None:
    st, body, _ = server.request("GET", f"/api/examples?{query}")
    assert st == 422 and body["error"]["field"] == field and body["error"]["message"].startswith(field)


def test_decision_api(server: Any, ws: Any) -> None:
    eid = ids_by(ws, "e.origin = 'seed'")[0]
    st, body, _ = server.request("POST", f"/api/examples/{eid}/decision", {"action": "reject", "reason": "vague"})
    assert (st, body["kind"], body["status"], body["reviewer"]) == (200, "review_reject", "excluded", "ann")
    st, body, _ = server.request("GET", f"/api/examples/{eid}")
    assert st == 200 and body["status"] == "excluded" and body["decisions"][0]["reason"] == "vague"
    assert server.request("POST", "/api/examples/" + "f" * 64 + "/decision", {"action": "accept"})[0] == 404
    assert server.request("GET", "/api/examples/" + "f" * 64)[0] == 404
    for body, field in (({}, "action"), ({"action": "drop"}, "action"), ({"action": "accept", "extra": 1}, "extra"),
                        ({"action": "reject", "reason": 5}, "reason"), ({"action": "edit"}, "messages"),
                        ({"action": "edit", "messages": [{"role": "user"}]}, "messages[0]")):
        st, out, _ = server.request("POST", f"/api/examples/{eid}/decision", body)
        assert (st, out["error"]["field"]) == (422, field), body
    st, out, _ = server.request("POST", f"/api/examples/{eid}/decision", raw=b"{not json")
    assert (st, out["error"]["field"]) == (422, "body")
    st, out, _ = server.request("POST", f"/api/examples/{eid}/decision", raw=b"[1, 2]")
    assert (st, out["error"]["field"]) == (422, "body")


def test_edit_api_refusal_is_a_422(server: Any, ws: Any) -> None:
    a, b = ids_by(ws, "e.origin = 'seed'")[:2]
    _, other, _ = server.request("GET", f"/api/examples/{b}")
    st, out, _ = server.request("POST", f"/api/examples/{a}/decision", {"action": "edit", "messages": other["messages"]})
    assert st == 422 and out["error"]["field"] == "messages" and "already stored" in out["error"]["message"]
    msgs = other["messages"][:1] + [{"role": "assistant", "content": "A better answer."}]
    st, out, _ = server.request("POST", f"/api/examples/{a}/decision", {"action": "edit", "messages": msgs})
    assert st == 200 and out["new_id"]
    st, out, _ = server.request("POST", f"/api/examples/{a}/decision", {"action": "edit", "messages": msgs})
    assert st == 409


def test_ratings_and_preferences_api(server: Any, built: dict[str, Any]) -> None:
    eid = built["test_ids"][0]
    st, out, _ = server.request("POST", "/api/ratings", {"eval_id": EVAL_A, "example_id": eid, "rating": 3, "note": "ok"})
    assert st == 200 and out["rating"] == 3
    st, out, _ = server.request("GET", f"/api/answers?eval_id={EVAL_A}")
    assert st == 200 and out["rated"] == 1 and out["answers"][0]["rating"] == 3
    for body, field in (({"example_id": eid, "rating": 3}, "eval_id"), ({"eval_id": EVAL_A, "rating": 3}, "example_id"),
                        ({"eval_id": EVAL_A, "example_id": eid}, "rating"),
                        ({"eval_id": EVAL_A, "example_id": eid, "rating": 7}, "rating"),
                        ({"eval_id": EVAL_A, "example_id": eid, "rating": 3, "note": ["x"]}, "note")):
        st, out, _ = server.request("POST", "/api/ratings", body)
        assert (st, out["error"]["field"]) == (422, field), body
    assert server.request("POST", "/api/ratings", {"eval_id": "nope", "example_id": eid, "rating": 3})[0] == 404
    assert server.request("GET", "/api/answers?eval_id=nope")[0] == 404
    st, out, _ = server.request("POST", "/api/preferences", {"left_eval": EVAL_A, "right_eval": EVAL_B,
                                                             "example_id": eid, "choice": "left"})
    assert st == 200 and out["preference_id"]
    st, out, _ = server.request("GET", f"/api/ab?left_eval={EVAL_A}&right_eval={EVAL_B}")
    assert st == 200 and out["chosen"] == 1 and out["total"] == 4 and "run_id" not in json.dumps(out["items"])
    st, out, _ = server.request("POST", "/api/preferences", {"left_eval": EVAL_A, "right_eval": EVAL_B,
                                                             "example_id": eid, "choice": "A"})
    assert (st, out["error"]["field"]) == (422, "choice")
    assert server.request("POST", "/api/preferences", {"left_eval": EVAL_A, "right_eval": "nope",
                                                       "example_id": eid, "choice": "tie"})[0] == 404


def test_csrf_host_and_escaping(server: Any, ws: Any) -> None:
    eid = ids_by(ws, "e.origin = 'seed'")[0]
    st, out, _ = server.request("POST", f"/api/examples/{eid}/decision", {"action": "accept"}, csrf=False)
    assert st == 403 and out["error"]["code"] == "csrf"
    st, out, _ = server.request("POST", f"/api/examples/{eid}/decision", {"action": "accept"}, csrf=False,
                                headers={"X-CSRF-Token": "guess"})
    assert st == 403
    assert server.request("GET", "/api/examples", headers={"Host": "attacker.example:8765"})[0] == 403
    xss = next(i for i in ids_by(ws, "e.origin = 'import'") if XSS_SCRIPT in json.dumps(server.request(
        "GET", f"/api/examples/{i}")[1]["messages"]))
    st, html, _ = server.request("GET", f"/examples/{xss}")
    assert st == 200 and XSS_SCRIPT not in html and XSS_IMG not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert server.config.csrf in html  # the page carries its token for the script
    st, html, _ = server.request("GET", "/examples/" + "f" * 64)
    assert st == 404 and "no example" in html
    assert server.request("GET", "/nowhere")[0] == 404
    assert server.request("GET", "/static/../store.py")[0] == 404


def test_every_page_renders(server: Any, ws: Any) -> None:
    eid = ids_by(ws)[0]
    for path in ("/", "/examples", "/examples?flag=refusal&origin=import", f"/examples/{eid}?pos=0", "/answers",
                 f"/answers?eval={EVAL_A}", f"/answers?eval={EVAL_A}&pos=3", "/ab", f"/ab?left={EVAL_A}&right={EVAL_B}",
                 "/static/review.js", "/static/review.css", "/health"):
        st, _, _ = server.request("GET", path)
        assert st == 200, path
    assert server.request("GET", f"/answers?eval={EVAL_A}&pos=9")[0] == 404
    assert server.request("GET", "/answers?eval=nope")[0] == 404
    assert server.request("GET", "/examples?status=gone")[0] == 422


def test_resume_redirects_to_the_first_unreviewed(server: Any, ws: Any) -> None:
    import urllib.request

    seeds = ids_by(ws, "e.origin = 'seed'")
    server.request("POST", f"/api/examples/{seeds[0]}/decision", {"action": "accept"})
    with urllib.request.urlopen(server.url + "/examples/resume?origin=seed") as r:
        assert r.url.endswith(f"/examples/{seeds[1]}?origin=seed&pos=1")


def test_token(ws: Any, built: dict[str, Any]) -> None:
    import urllib.request

    with AppServer(ws, token="t0ken-for-tests") as s:
        assert s.request("GET", "/api/examples")[0] == 401
        assert s.request("GET", "/health")[0] == 200
        st, out, _ = s.request("GET", "/api/examples", headers={"Authorization": "Bearer t0ken-for-tests"})
        assert st == 200 and out["total"] == 19
        assert s.request("GET", "/api/examples", headers={"Authorization": "Bearer wrong"})[0] == 401
        eid = ids_by(ws)[0]
        # the bearer token alone may change state (scripts); without it and without CSRF: refused
        st, _, _ = s.request("POST", f"/api/examples/{eid}/decision", {"action": "accept"}, csrf=False,
                             headers={"Authorization": "Bearer t0ken-for-tests"})
        assert st == 200
        assert s.request("POST", f"/api/examples/{eid}/decision", {"action": "accept"})[0] == 401
        # a browser: ?token=T once sets the cookie and drops the token from the address
        req = urllib.request.Request(s.url + "/examples?origin=seed&token=t0ken-for-tests")
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(req) as r:
            assert r.status == 200 and r.url.endswith("/examples?origin=seed")
        with opener.open(s.url + "/") as r:
            assert r.status == 200


def test_a_locked_workspace_answers_503(server: Any, ws: Any) -> None:
    import subprocess
    import sys
    import textwrap

    holder = textwrap.dedent(f"""
        import time
        from curator.workspace import Workspace
        with Workspace({str(ws.path)!r}).connect():
            print("locked", flush=True)
            time.sleep(30)
    """)
    eid = ids_by(ws)[0]
    p = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "locked"
        st, out, _ = server.request("POST", f"/api/examples/{eid}/decision", {"action": "accept"})
        assert st == 503 and "Nothing was saved" in out["error"]["message"]
    finally:
        p.kill()
        p.wait(30)
    assert server.request("POST", f"/api/examples/{eid}/decision", {"action": "accept"})[0] == 200
