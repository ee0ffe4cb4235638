"""The mmchat CLI end to end on the tiny profile, and its error handling."""

import argparse
import json
import subprocess
import sys

import pytest
from PIL import Image

from chat.cli import main

from tests.conftest import ROOT, TINY_CONFIG


def _img(tmp_path, name="cat.png", size=(96, 80)):
    path = tmp_path / name
    Image.new("RGB", size, (120, 180, 60)).save(path)
    return path


def test_ask_json(tiny_dir, tmp_path, capsys):
    code = main(["ask", str(_img(tmp_path)), "What is in the red circle?", "--point", "40,40",
                 "--config", str(TINY_CONFIG), "--json"])
    out = capsys.readouterr().out
    assert code == 0 and isinstance(json.loads(out)["answer"], str)


def test_ask_streams_the_same_answer_as_json(tiny_dir, tmp_path, capsys):
    argv = ["ask", str(_img(tmp_path)), "Describe it.", "--config", str(TINY_CONFIG), "--temperature", "0",
            "--seed", "3", "--max-new-tokens", "12"]
    assert main([*argv, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)["answer"]
    assert main(argv) == 0  # greedy with the same settings: the streamed text is that answer, then a newline
    assert answer and capsys.readouterr().out == answer + "\n"


def test_ask_as_a_new_user_would(tiny_dir, tmp_path):
    """`python -m chat ask ...` in a subprocess: env MMCHAT_CONFIG selects the profile."""
    env = {**__import__("os").environ, "MMCHAT_CONFIG": str(TINY_CONFIG)}
    done = subprocess.run([sys.executable, "-m", "chat", "ask", str(_img(tmp_path)), "What is this?", "--json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "answer" in json.loads(done.stdout.strip().splitlines()[-1])


def test_bad_inputs_exit_2_with_one_line(tiny_dir, tmp_path, capsys):
    fake = tmp_path / "fake.png"
    fake.write_text("<html>not an image</html>")
    cases = [
        ["ask", str(tmp_path / "missing.png"), "q", "--config", str(TINY_CONFIG)],
        ["ask", str(fake), "q", "--config", str(TINY_CONFIG)],
        ["ask", str(_img(tmp_path)), "q", "--point", "4;4", "--config", str(TINY_CONFIG)],
        ["ask", str(_img(tmp_path)), "   ", "--config", str(TINY_CONFIG)],
        ["ask", str(_img(tmp_path)), "q", "--config", str(tmp_path / "nope.yaml")],
        ["ask", str(_img(tmp_path)), "q", "--max-new-tokens", "0", "--config", str(TINY_CONFIG)],
        ["no-such-verb"],
    ]
    for argv in cases:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse errors
            code = exc.code
        err = capsys.readouterr().err.strip()
        assert code == 2, argv
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)


def _verbs():
    from chat.cli import build_parser

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0
    for verb in _verbs():
        assert verb in text


@pytest.mark.parametrize("verb", sorted(_verbs()))
def test_each_verb_help_explains_itself(verb, capsys):
    parser = _verbs()[verb]
    with pytest.raises(SystemExit) as done:
        main([verb, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert done.value.code == 0 and text.startswith(f"usage: mmchat {verb}")
    assert parser.description and " ".join(parser.description.split())[:60] in text  # says what it does
    assert "--config" in text  # every verb takes --config (DESIGN)
    for action in parser._actions:  # every argument is listed, with a help text
        name = action.option_strings[-1] if action.option_strings else (action.metavar or action.dest)
        assert name in text, (verb, name)
        assert action.help, (verb, name)


def test_build_tiny_json(tmp_path, capsys):
    assert main(["build-tiny", str(tmp_path / "t"), "--family", "clip", "--family", "blip_vqa", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["dir"] == str(tmp_path / "t") and payload["models"] == ["clip", "blip_vqa"]


def test_build_tiny_builds_into_the_config_tiny_dir(tmp_path, monkeypatch, capsys):
    config = tmp_path / "mine.yaml"
    text = TINY_CONFIG.read_text()
    assert "tiny_dir: ~/.cache/mmchat/tiny" in text
    config.write_text(text.replace("tiny_dir: ~/.cache/mmchat/tiny", f"tiny_dir: {tmp_path / 'from-config'}"))
    monkeypatch.delenv("MMCHAT_TINY_DIR", raising=False)

    def built(*extra):
        assert main(["build-tiny", "--family", "clip", "--json", *map(str, extra)]) == 0
        return json.loads(capsys.readouterr().out)["dir"]

    assert built("--config", config) == str(tmp_path / "from-config")
    assert (tmp_path / "from-config" / "clip" / "config.json").is_file()
    monkeypatch.setenv("MMCHAT_CONFIG", str(config))  # the config from the environment works the same
    assert built() == str(tmp_path / "from-config")
    monkeypatch.setenv("MMCHAT_TINY_DIR", str(tmp_path / "from-env"))  # the environment overrides the config
    assert built("--config", config) == str(tmp_path / "from-env")
    assert built(tmp_path / "explicit", "--config", config) == str(tmp_path / "explicit")  # DIR wins
    assert main(["build-tiny", "--config", str(tmp_path / "nope.yaml")]) == 2
