"""The mmchat CLI end to end on the tiny profile, and its error handling."""

import json
import subprocess
import sys

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


def test_ask_streams_text(tiny_dir, tmp_path, capsys):
    assert main(["ask", str(_img(tmp_path)), "Describe it.", "--config", str(TINY_CONFIG)]) == 0
    assert capsys.readouterr().out.endswith("\n")


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


def test_help_explains_every_verb(capsys):
    try:
        main(["--help"])
    except SystemExit:
        pass
    text = capsys.readouterr().out
    for verb in ["serve", "build-tiny", "ask"]:
        assert verb in text


def test_build_tiny_json(tmp_path, capsys):
    assert main(["build-tiny", str(tmp_path / "t"), "--family", "clip", "--family", "blip_vqa", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["dir"] == str(tmp_path / "t") and payload["models"] == ["clip", "blip_vqa"]
