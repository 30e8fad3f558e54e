// curator review: keyboard-first actions on the server-rendered pages.  Plain JavaScript, no build step.
// The page's data (kind, CSRF token, ids, neighbour links) is the JSON in #page-data; every state change is a
// JSON POST with the X-CSRF-Token header; text from the server is only ever put in the page as text.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("page-data").textContent);
  var flashBox = document.getElementById("flash");
  var help = document.getElementById("help");
  var busy = false;

  function flash(message, bad) {
    flashBox.textContent = message;
    flashBox.className = bad ? "flash bad" : "flash";
    flashBox.hidden = false;
  }

  function post(url, body) {
    if (busy) { return Promise.reject(new Error("busy")); }
    busy = true;
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": data.csrf},
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        busy = false;
        if (!r.ok) {
          var msg = (j.error && j.error.message) || ("HTTP " + r.status);
          if (r.status === 503) { msg = "Not saved: " + msg; }
          flash(msg, true);
          throw new Error(msg);
        }
        return j;
      });
    }, function (err) {
      busy = false;
      flash("Not saved: the review server did not answer (" + err.message + ")", true);
      throw err;
    });
  }

  function go(url) { if (url) { window.location.href = url; } }
  function typing(el) { return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT"); }

  // -- lists: j/k select a row, Enter opens it ------------------------------------------------------------
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.row"));
  var sel = -1;
  function select(i) {
    if (!rows.length) { return; }
    sel = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (r, k) { r.classList.toggle("sel", k === sel); });
    rows[sel].scrollIntoView({block: "nearest"});
  }
  rows.forEach(function (r, k) { r.addEventListener("click", function (e) { if (e.target.tagName !== "A") { select(k); go(r.dataset.href); } }); });

  // -- one example: accept, reject with a reason, edit ---------------------------------------------------
  var rejectForm = document.getElementById("reject-form");
  var editForm = document.getElementById("edit-form");
  function decide(body) {
    return post("/api/examples/" + encodeURIComponent(data.id) + "/decision", body);
  }
  function accept() {
    decide({action: "accept"}).then(function () { flash("accepted"); go(data.next || data.here); }, function () {});
  }
  function openReject() {
    if (!rejectForm) { return; }
    if (editForm) { editForm.hidden = true; }
    rejectForm.hidden = false;
    document.getElementById("reason").focus();
  }
  function openEdit() {
    if (!editForm) { return; }
    if (rejectForm) { rejectForm.hidden = true; }
    var box = document.getElementById("edit-turns");
    box.textContent = "";
    data.messages.forEach(function (m, i) {
      var label = document.createElement("label");
      label.textContent = m.role;
      var ta = document.createElement("textarea");
      ta.rows = Math.min(12, Math.max(2, m.content.split("\n").length + 1));
      ta.value = m.content;
      ta.dataset.role = m.role;
      ta.id = "edit-turn-" + i;
      label.appendChild(ta);
      box.appendChild(label);
    });
    editForm.hidden = false;
    var last = box.querySelectorAll("textarea");
    if (last.length) { last[last.length - 1].focus(); }
  }
  function saveEdit() {
    var messages = Array.prototype.map.call(document.querySelectorAll("#edit-turns textarea"), function (ta) {
      return {role: ta.dataset.role, content: ta.value};
    });
    var reason = document.getElementById("edit-reason").value;
    decide({action: "edit", messages: messages, reason: reason || null}).then(function (j) {
      flash("edited: the new example is " + j.new_id);
      go("/examples/" + encodeURIComponent(j.new_id));
    }, function () {});
  }
  if (rejectForm) {
    rejectForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var reason = document.getElementById("reason").value;
      decide({action: "reject", reason: reason || null}).then(function () { flash("rejected"); go(data.next || data.here); }, function () {});
    });
  }
  if (editForm) {
    editForm.addEventListener("submit", function (e) { e.preventDefault(); saveEdit(); });
    editForm.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); saveEdit(); }
    });
  }
  document.querySelectorAll("[data-act]").forEach(function (b) {
    b.addEventListener("click", function () {
      var act = b.dataset.act;
      if (act === "accept") { accept(); } else if (act === "reject") { openReject(); } else { openEdit(); }
    });
  });

  // -- answers: 1-5 rate (with the note) and move on ---------------------------------------------------------
  function rate(n) {
    var note = document.getElementById("note");
    post("/api/ratings", {eval_id: data.eval_id, example_id: data.example_id, rating: n,
                          note: note && note.value ? note.value : null})
      .then(function () { flash("rated " + n); go(data.next || data.here); }, function () {});
  }
  document.querySelectorAll("[data-rate]").forEach(function (b) {
    b.addEventListener("click", function () { rate(parseInt(b.dataset.rate, 10)); });
  });

  // -- A/B: A, B or tie on screen -> left, right or tie in the evaluations' order ----------------------------
  function choose(shown) {
    var choice = shown === "tie" ? "tie" : ((shown === "A") !== data.swapped ? "left" : "right");
    post("/api/preferences", {left_eval: data.left_eval, right_eval: data.right_eval, example_id: data.example_id,
                              choice: choice})
      .then(function () { flash("chose " + shown); go(data.next || data.here); }, function () {});
  }
  document.querySelectorAll("[data-choose]").forEach(function (b) {
    b.addEventListener("click", function () { choose(b.dataset.choose); });
  });

  // -- the keyboard -------------------------------------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") {
      help.hidden = true;
      if (rejectForm) { rejectForm.hidden = true; }
      if (editForm) { editForm.hidden = true; }
      if (typing(document.activeElement)) { document.activeElement.blur(); }
      return;
    }
    if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) { return; }
    var k = e.key;
    if (k === "?") { help.hidden = !help.hidden; e.preventDefault(); return; }
    if (data.kind === "list") {
      if (k === "j") { select(sel + 1); } else if (k === "k") { select(sel - 1); }
      else if ((k === "Enter" || k === "o") && sel >= 0) { go(rows[sel].dataset.href); }
      else { return; }
    } else if (data.kind === "example") {
      if (k === "j") { go(data.next); } else if (k === "k") { go(data.prev); }
      else if (k === "a") { accept(); } else if (k === "r") { openReject(); } else if (k === "e") { openEdit(); }
      else { return; }
    } else if (data.kind === "answers" && data.example_id) {
      if (k === "j") { go(data.next); } else if (k === "k") { go(data.prev); }
      else if (k >= "1" && k <= "5" && k.length === 1) { rate(parseInt(k, 10)); }
      else { return; }
    } else if (data.kind === "ab" && data.example_id) {
      if (k === "j") { go(data.next); } else if (k === "k") { go(data.prev); }
      else if (k === "a" || k === "1") { choose("A"); } else if (k === "b" || k === "2") { choose("B"); }
      else if (k === "t" || k === "3") { choose("tie"); }
      else { return; }
    } else { return; }
    e.preventDefault();
  });
})();
