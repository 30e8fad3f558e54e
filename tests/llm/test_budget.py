"""Price table, cost bounds and the budget cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from curator.errors import ConfigError
from curator.llm.budget import Budget, Price, estimate_input_tokens, load_prices, max_input_tokens


def test_bundled_prices_and_lookup_rules() -> None:
    table = load_prices()
    assert table.lookup("openai", "gpt-4o-mini") == Price(0.15, 0.60)
    assert table.lookup("openai", "gpt-4o-mini-2024-07-18") == Price(0.15, 0.60)
    assert table.lookup("openai", "ft:gpt-4o-mini:acme::abc") == table.lookup("openai", "ft:gpt-4o-mini")
    assert table.lookup("anthropic", "claude-3-5-haiku-20241022") == table.lookup("anthropic", "claude-3-5-haiku")
    assert table.lookup("anthropic", "claude-3-5-haiku-latest") is not None
    assert table.lookup("openai", "gpt-unknown") is None
    assert table.lookup("compatible", "llama3:8b") is None
    assert table.lookup("local", "anything") == Price(0.0, 0.0)


def test_user_prices_merge_over_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "p.yaml"
    f.write_text('compatible:\n  "llama3:8b": {input: 0, output: 0}\nopenai:\n  gpt-4o-mini: {input: 1, output: 2}\n')
    table = load_prices(f)
    assert table.lookup("compatible", "llama3:8b") == Price(0.0, 0.0)
    assert table.lookup("openai", "gpt-4o-mini") == Price(1.0, 2.0)
    assert table.lookup("openai", "gpt-4o") is not None  # bundled entries stay
    monkeypatch.setenv("CURATOR_PRICES", str(f))
    assert load_prices().lookup("openai", "gpt-4o-mini") == Price(1.0, 2.0)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "prices.yaml").write_text("anthropic:\n  claude-x: {input: 3, output: 4}\n")
    assert load_prices(None, ws).lookup("anthropic", "claude-x") == Price(3.0, 4.0)


def test_bad_prices_file_lists_every_problem(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("openai:\n  a: {input: x, output: 1}\n  b: {input: 1}\n  c: {input: -1, output: 1}\n")
    with pytest.raises(ConfigError) as e:
        load_prices(f)
    assert "openai.a" in str(e.value) and "openai.b" in str(e.value) and "openai.c" in str(e.value)
    with pytest.raises(ConfigError, match="not found"):
        load_prices(tmp_path / "missing.yaml")


def test_cost_and_budget_reservations() -> None:
    p = Price(0.15, 0.60)
    assert p.cost(1_000_000, 1_000_000) == pytest.approx(0.75)
    b = Budget(0.01)
    assert b.try_reserve(0.004) and b.try_reserve(0.004)
    assert not b.try_reserve(0.004) and b.holds == 2  # 0.012 could cross 0.01
    assert not b.exhausted  # that is the runner's call (it waits for the two in flight first)
    b.settle(0.004, 0.001)
    assert b.spent == pytest.approx(0.001) and b.reserved == pytest.approx(0.004)
    assert b.try_reserve(0.004)
    unlimited = Budget(None)
    assert unlimited.try_reserve(1e9) and unlimited.left is None
    assert Budget(1.0, already_spent=0.9).left == pytest.approx(0.1)


def test_input_token_bound_holds_for_a_real_tokenizer() -> None:
    from curator.models import load_tokenizer, render_chat

    tok = load_tokenizer()
    msgs = [{"role": "system", "content": "Sé breve. 简短回答。"},
            {"role": "user", "content": "Why is `nimbus dns` returning NXDOMAIN?? 🙂 " * 20}]
    real = len(tok(render_chat(tok, msgs, add_generation_prompt=True))["input_ids"])
    assert real <= max_input_tokens(msgs)
    assert estimate_input_tokens(msgs) < max_input_tokens(msgs)


@pytest.mark.parametrize(("entry", "message"), [
    ("{input: .nan, output: 1}", "prices must be finite"),
    ("{input: .inf, output: 1}", "prices must be finite"),
    ("{input: 1.0e308, output: 1}", "at most 1e\\+06 USD per 1M tokens"),
    ("{input: true, output: 1}", "input and output must be numbers"),
])
def test_prices_that_would_break_the_cap_are_refused(tmp_path: Path, entry: str, message: str) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(f"openai:\n  gpt-4o-mini: {entry}\n")
    with pytest.raises(ConfigError, match=message):
        load_prices(f)


def test_prices_written_as_text_and_broken_files(tmp_path: Path) -> None:
    from curator.errors import InputError

    f = tmp_path / "p.yaml"
    f.write_text("openai:\n  m: {input: 1e-1, output: '2'}\n")  # YAML reads 1e-1 as text
    assert load_prices(f).lookup("openai", "m") == Price(0.1, 2.0)
    f.write_bytes(b"openai:\n  m: {input: 1, output: \xff}\n")
    with pytest.raises(InputError, match=r"p\.yaml:2: not UTF-8 text"):
        load_prices(f)


def test_keys_file_problems_are_one_line_and_the_alias_bomb_does_not_hang(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from curator.errors import InputError
    from curator.llm.keys import api_key

    keys = tmp_path / "keys.yaml"
    monkeypatch.setenv("CURATOR_KEYS_FILE", str(keys))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    bomb = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
            + "".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
            + "ANTHROPIC_API_KEY: *i\n")
    for text, error, message in (
        (bomb, InputError, "aliases are expanded"),  # str() of it used to build 9^9 strings (a hang, gigabytes)
        ("ANTHROPIC_API_KEY: {a: 1}\n", ConfigError, "ANTHROPIC_API_KEY: a key must be text, got dict"),
        ('ANTHROPIC_API_KEY: "sk-ant-abc\\nX-Evil: 1"\n', ConfigError, "line break"),
        ("- sk-ant-abc\n", ConfigError, "expected lines of VARIABLE: key"),
    ):
        keys.write_text(text)
        with pytest.raises(error, match=message):
            api_key("anthropic")
    keys.write_text("ANTHROPIC_API_KEY: sk-ant-good-key\nOPENAI_API_KEY:\n")
    assert api_key("anthropic") == "sk-ant-good-key"
