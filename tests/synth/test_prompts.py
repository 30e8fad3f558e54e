"""Templates and the tolerant parsers of teacher replies."""

from __future__ import annotations

from pathlib import Path

import pytest

from curator.errors import ConfigError
from curator.synth.prompts import (
    TEMPLATE_NAMES,
    export_templates,
    format_demos,
    load_template,
    parse_pair,
    parse_score,
)


@pytest.mark.parametrize(
    "reply",
    [
        '{"question": "How do I reset it?", "answer": "Run `nimbus reset`."}',
        'Sure! Here it is:\n```json\n{"question": "How do I reset it?", "answer": "Run `nimbus reset`."}\n```',
        '{"question": "How do I reset it?", "answer": "Run `nimbus reset`.",}',
        '{"Question": "How do I reset it?", "Response": "Run `nimbus reset`."}',
        '[{"question": "How do I reset it?", "answer": "Run `nimbus reset`."}]',
        "Question: How do I reset it?\nAnswer: Run `nimbus reset`.",
        "Question: How do I reset it?\nAnswer: Run `nimbus reset`.\nQuestion: And then?\nAnswer: Nothing.",
        "**Question:** How do I reset it?\n**Answer:** Run `nimbus reset`.",
        '{"question": "How do I reset it?", "answer": "Run `nimbus reset`.',  # cut off at the end
    ],
)
def test_parse_pair_accepts(reply: str) -> None:
    assert parse_pair(reply) == ("How do I reset it?", "Run `nimbus reset`.")


def test_parse_pair_keeps_raw_line_breaks_in_json_strings() -> None:
    reply = '{"question": "Disk full?", "answer": "Diagnosis: full.\n1. a\n2. b\n3. c\nEscalation: x"}'
    q, a = parse_pair(reply)  # type: ignore[misc]
    assert q == "Disk full?" and a.splitlines() == ["Diagnosis: full.", "1. a", "2. b", "3. c", "Escalation: x"]


def test_parse_pair_takes_the_first_of_several_labelled_pairs() -> None:
    reply = "Question: One?\nAnswer: First answer.\n\nQuestion: Two?\nAnswer: Second."
    assert parse_pair(reply) == ("One?", "First answer.")


@pytest.mark.parametrize("reply", ["", "   ", "I like turtles.", '{"question": "only a question"}', "{}", "[1, 2]"])
def test_parse_pair_rejects(reply: str) -> None:
    assert parse_pair(reply) is None


def test_parse_score() -> None:
    assert parse_score('{"score": 8, "reason": "clear"}') == (8.0, "clear")
    assert parse_score("Score: 6/10") == (6.0, "")
    assert parse_score("7") == (7.0, "")
    assert parse_score("no idea") == (None, "")


def test_bundled_templates_render() -> None:
    for name in TEMPLATE_NAMES:
        t = load_template(name)
        assert t.hash and t.turns
    pairs = [("Q1?", "A1."), ("Q2?", "A2.")]
    msgs = load_template("seeds").render(pairs, k=2, system="Be brief.", examples=format_demos(pairs))
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "Be brief." in msgs[0]["content"]
    assert [msgs[2]["content"], msgs[4]["content"]] == ["Question: Q1?\nAnswer: A1.", "Question: Q2?\nAnswer: A2."]
    assert msgs[1]["content"] == msgs[5]["content"] and not any("{{" in m["content"] for m in msgs)
    assert [m["role"] for m in load_template("seeds").render([], k=0, system="s", examples="")] == ["system", "user"]


def test_edited_templates_override_and_unknown_placeholders_fail(tmp_path: Path) -> None:
    written = export_templates(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{n}.txt" for n in TEMPLATE_NAMES)
    assert export_templates(tmp_path) == []  # nothing overwritten
    (tmp_path / "targeted.txt").write_text("### system\nFix: {{weakness}}\n### user\nLike these:\n{{examples}}\n")
    inline = load_template("targeted", tmp_path).render([("Q?", "A.")], weakness="w", examples="Example 1", k=1,
                                                        system="s")
    assert inline == [{"role": "system", "content": "Fix: w"}, {"role": "user", "content": "Like these:\nExample 1"}]
    (tmp_path / "seeds.txt").write_text("### user\nMake one like {{examples}} for {{sistem}}\n")
    t = load_template("seeds", tmp_path)
    assert t.path == str(tmp_path / "seeds.txt") and t.hash != load_template("seeds").hash
    with pytest.raises(ConfigError, match=r"\{\{sistem\}\}"):
        t.render(k=1, system="s", examples="e")
    assert load_template("judge", tmp_path).hash == load_template("judge").hash
    (tmp_path / "judge.txt").write_text("no turns here")
    with pytest.raises(ConfigError, match="### user"):
        load_template("judge", tmp_path)
    (tmp_path / "judge.txt").write_text("### example user\n{{question}}\n### user\nx\n### example assistant\n{{answer}}\n")
    with pytest.raises(ConfigError, match="must follow each other"):
        load_template("judge", tmp_path)


def test_an_edited_template_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    from curator.errors import InputError

    (tmp_path / "seeds.txt").write_bytes(b"### user\nWrite one \xff question.\n")
    with pytest.raises(InputError, match=r"seeds\.txt:2: not UTF-8 text"):
        load_template("seeds", tmp_path)
