"""``mmchat eval-router``: the bundled request set, the scoring rules, the table, and a run through the router."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from chat.cli import main
from chat.errors import UserError
from chat.eval_router import (ANSWER, Request, argument_matches, evaluate, read_requests,
                              router_decide)
from chat.toolbox import TOOLS

from tests.conftest import TINY_CONFIG


def test_the_bundled_set_covers_every_tool_both_languages_and_every_kind():
    requests = read_requests()
    tools = {name: spec.schema for name, spec in TOOLS.items()}
    assert len(requests) >= 150
    assert Counter(r.tool for r in requests).keys() == set(tools) | {ANSWER}  # every tool, and replies in words
    assert all(n >= 5 for n in Counter(r.tool for r in requests).values())
    languages = Counter(r.lang for r in requests)
    assert languages.keys() == {"en", "ja"} and languages["ja"] >= 50
    assert {r.lang for r in requests if any("\u3040" <= ch <= "\u30ff" for ch in r.text)} == {"ja"}
    assert Counter(r.kind for r in requests).keys() == {"tool", "plain", "ambiguous"}
    assert all(r.also for r in requests if r.kind == "ambiguous")  # an ambiguous request has another right tool
    for r in requests:  # every expected tool and argument is one the chat can run
        assert {r.tool, *r.also} <= set(tools) | {ANSWER}, r.text
        assert not r.args or set(r.args) <= set(tools[r.tool].model_fields), r.text
    assert any(r.markers for r in requests if r.tool == "remove")  # remove needs a marked region


def test_a_bad_request_file_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="is not a file"):
        read_requests(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "Caption it.", "tool": "caption"}\n\n{"tool": "score"}\n', encoding="utf-8")
    with pytest.raises(UserError, match="line 3 is not a request"):
        read_requests(bad)
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="holds no requests"):
        read_requests(tmp_path / "empty.jsonl")


def test_arguments_match_as_documented():
    assert argument_matches("sky purple", "Make the  SKY purple, please")  # a string appears in the generated one
    assert not argument_matches("sky purple", "make the sea purple") and not argument_matches("dog", None)
    assert argument_matches(["cat", "dog"], ["Dog", "cat"])  # a list holds the same items, in any order
    assert not argument_matches(["cat", "dog"], ["cat"]) and not argument_matches(["cat"], "cat")
    assert argument_matches(30, 30) and not argument_matches(30, 31) and not argument_matches(False, None)


def test_the_table_counts_tools_arguments_confusion_and_errors():
    requests = [
        Request("Is it a cat or a dog?", "score", args={"labels": ["cat", "dog"]}),
        Request("猫か犬か", "score", lang="ja", args={"labels": ["猫", "犬"]}),
        Request("What's in this picture?", "caption", kind="ambiguous", also=["vqa"]),
        Request("Remove the dog.", "remove", args={"target": "dog"}, markers=1),
        Request("Hello!", ANSWER, kind="plain"),
    ]
    script = {"Is it a cat or a dog?": ("score", {"labels": ["dog", "cat"]}), "猫か犬か": ("score", {"labels": ["猫"]}),
              "What's in this picture?": ("vqa", {"question": "?"}), "Hello!": ("edit", {"instruction": "hi"})}
    seen = []

    def decide(session, text):
        seen.append((text, session.version().id, len(session.record().markers)))
        if text == "Remove the dog.":
            raise UserError("The model is not loaded.")
        return script[text]

    table = evaluate(decide, requests, model="scripted").to_dict()
    assert [s[1:] for s in seen] == [("img1.v1", 0)] * 3 + [("img1.v1", 1), ("img1.v1", 0)]  # a new session each
    assert table["requests"] == 5 and table["tool_accuracy"] == 0.6  # score x2, and vqa is right too
    assert table["by_language"] == {"en": 0.5, "ja": 1.0}
    assert table["by_kind"] == {"ambiguous": 1.0, "plain": 0.0, "tool": 0.667}
    assert table["argument_accuracy"] == 0.5 and table["arguments_checked"] == 2  # ["猫"] is not ["猫", "犬"]
    assert table["errors"] == 1 and table["rows"][3]["error"] == "The model is not loaded."
    assert table["confusion"] == {"score": {"score": 2}, "caption": {"vqa": 1}, "remove": {"error": 1},
                                  "answer": {"edit": 1}}
    text = evaluate(decide, requests, model="scripted").markdown()
    assert "tool accuracy 0.6" in text and "1 errors (the first: The model is not loaded.)" in text
    assert text.splitlines()[-6:] == [  # rows: the expected tool; columns: the chosen one
        "| expected \\ chosen | edit | error | score | vqa |", "| --- | ---: | ---: | ---: | ---: |",
        "| answer | 1 |  |  |  |", "| caption |  |  |  | 1 |", "| remove |  | 1 |  |  |", "| score |  |  | 2 |  |"]


class ScriptedChat:
    """A local chat model's turn protocol that picks the tool a request's words name (and "answer" otherwise),
    and whose answers are counted."""

    ARGUMENTS = {"score": {"labels": ["cat", "dog"]}, "edit": {"instruction": "make the sky purple"}}

    def __init__(self):
        self.answers = 0
        self.chosen = None

    def choice_logprobs(self, turns, options):
        text = turns[-1].text.lower()
        scores = [-0.1 if option in text else -5.0 for option in options[:-1]] + [-2.0]
        self.chosen = options[scores.index(max(scores))]
        return scores

    def stream(self, turns, options=None, cancel=None):
        chosen, self.chosen = self.chosen, None
        if chosen in self.ARGUMENTS:  # the chosen tool's arguments, as the model writes them
            yield json.dumps({"name": chosen, "arguments": self.ARGUMENTS[chosen]})
            return
        self.answers += 1
        yield from ["It ", "is ", "a ", "cat."]


def test_router_decide_takes_the_routers_first_step_and_runs_no_tool(assistant):
    from chat.lc_model import LocalMultimodalChatModel
    from chat.router import Router

    chat = ScriptedChat()
    router = Router(assistant, LocalMultimodalChatModel(chat=chat))
    sessions = []

    def decide(session, text):
        sessions.append(session)
        return router_decide(router)(session, text)

    requests = [Request("Please score it: a cat or a dog?", "score", args={"labels": ["cat", "dog"]}),
                Request("/caption", "caption"), Request("/mark", "mark", args={"outside": "blur"}),
                Request("Edit: make the sky purple", "edit", args={"instruction": "sky purple"}),
                Request("Good morning!", ANSWER, kind="plain")]
    table = evaluate(decide, requests).to_dict()
    rows = {r["text"]: r for r in table["rows"]}
    assert rows["Please score it: a cat or a dog?"]["arguments"]["labels"] == ["cat", "dog"]
    assert rows["Edit: make the sky purple"]["args_ok"] is True
    assert rows["/mark"]["chosen"] == "mark" and rows["/mark"]["args_ok"] is False  # /mark draws without blur
    assert table["tool_accuracy"] == 1.0 and table["errors"] == 0
    assert chat.answers == 1  # only "Good morning!" started an answer (stopped at its first words)
    for session in sessions:  # the turn stopped before any tool ran: no result, no new version
        assert [e.tool for e in session.trace] == [] and len(session.record().versions) == 1


def test_eval_router_on_the_tiny_model(tiny_dir, tmp_path, capsys):
    path = tmp_path / "requests.jsonl"
    lines = [{"text": "/score cat | dog", "tool": "score", "args": {"labels": ["cat", "dog"]}},
             {"text": "What is this?", "tool": ANSWER, "also": ["caption", "vqa"], "kind": "ambiguous"},
             {"text": "この写真を説明して。", "tool": "caption", "lang": "ja"}]
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines), encoding="utf-8")
    assert main(["eval-router", str(path), "--config", str(TINY_CONFIG), "--json"]) == 0
    captured = capsys.readouterr()
    table = json.loads(captured.out)
    assert table["requests"] == 3 and table["errors"] == 0 and table["median_ms"] > 0
    slash = table["rows"][0]  # a slash command is routed without the model: always right
    assert slash["chosen"] == "score" and slash["tool_ok"] and slash["args_ok"]
    assert all(r["chosen"] in set(TOOLS) | {ANSWER} for r in table["rows"])
    assert "[clip]" not in captured.err  # no tool ran, so the scoring model never loaded
    assert main(["eval-router", str(path), "--config", str(TINY_CONFIG), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Routing of 1 requests") and "| score | 1 |" in out


def test_eval_router_problems_are_one_line(tiny_dir, tmp_path, capsys):
    assert main(["eval-router", str(tmp_path / "none.jsonl"), "--config", str(TINY_CONFIG)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a file" in err and "[llava]" not in err  # fails before loading
    assert main(["eval-router", "--limit", "0", "--config", str(TINY_CONFIG)]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err


def test_the_tiny_llava_calls_tools_with_arguments_valid_for_each_tool(assistant):
    from chat.router import Router

    router = Router(assistant)  # the tiny local LLaVA (random weights)
    router.choice_margin = -1e9  # any tool beats answering, so every request gets a generated call
    sessions = []

    def decide(session, text):
        sessions.append(session)
        return router_decide(router)(session, text)

    requests = [Request("Is it a cat or a dog?", "score"), Request("この写真を説明して。", "caption", lang="ja")]
    table = evaluate(decide, requests)
    assert [o.error for o in table.outcomes] == [None, None]
    for outcome, session in zip(table.outcomes, sessions):
        assert outcome.chosen in TOOLS  # a call, its arguments generated under the tool's schema
        TOOLS[outcome.chosen].schema.model_validate(outcome.args)
        assert not session.trace and len(session.record().versions) == 1  # the call did not run
