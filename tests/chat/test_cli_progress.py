"""Model loading on the CLI's stderr: a one-line bar on a terminal, clean lines in a pipe or a log."""

import io
import os
import subprocess
import sys

from PIL import Image

from chat.commands.common import progress_line, stderr_progress
from chat.config import load_config
from chat.registry import ModelRegistry

from tests.conftest import ROOT, TINY_CONFIG


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_pipe_a_load_prints_two_clean_lines(tiny_dir, tmp_path):
    image = tmp_path / "green.png"
    Image.new("RGB", (64, 48), (20, 200, 40)).save(image)
    env = {**os.environ, "MMCHAT_CONFIG": str(TINY_CONFIG)}
    done = subprocess.run([sys.executable, "-m", "chat", "caption", str(image), "--json"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\x1b" not in done.stderr and "%|" not in done.stderr  # no bars
    ours = [line for line in done.stderr.splitlines() if line.startswith("[blip_caption]")]
    assert len(ours) == 2
    assert ours[0].startswith("[blip_caption] loading blip_caption from ")
    assert ours[1].startswith("[blip_caption] loaded blip_caption in ")


def test_on_a_terminal_a_load_is_one_bar_replaced_by_its_last_line(tiny_dir, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    ModelRegistry(load_config(TINY_CONFIG), progress=stderr_progress).get("clip")
    out = terminal.getvalue()
    lines = out.split("\n")
    assert len(lines) == 3 and lines[-1] == ""  # two lines end with a newline: the first and the last
    assert lines[0].endswith("[clip] loading clip from " + str(tiny_dir / "clip"))
    bars = lines[1].split("\r")[1:-1]  # redrawn in place, then cleared for the last line
    assert len(bars) >= 5 and all("%" in bar and bar.startswith("[clip] ") for bar in bars)
    percents = [int(bar.split("%")[0].split()[-1]) for bar in bars]
    assert percents == sorted(percents) and 0 <= percents[0] < percents[-1] <= 99
    assert lines[1].split("\r")[-1].startswith("\x1b[K[clip] loaded clip in ")


def test_the_bar_fits_the_terminal():
    line = progress_line("llava", 0.5, "loading llava: the weights, quantizing to nf4 " * 5, width=60)
    assert len(line) == 59 and line.startswith("[llava] ##########---------- ")
    assert " 50% loading llava" in line
