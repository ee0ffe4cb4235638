"""Fakes and helpers the tests share (import them from here, never from another test file).

- :class:`ScriptedChat`: one scripted chat model, like llm's ``MockModel``: it answers from a script and scores
  options from a table, recording what it was shown. It is a ``MultimodalChat`` to
  :class:`chat.lc_model.LocalMultimodalChatModel` (``local(chat)``) and a :class:`tools.classify.ChatModel`.
- :class:`ScriptedRouter`: a router with the real interface (``respond``), deterministic and slow enough to
  observe streaming, for the page's tests.
- ``run``/``of``: one turn through a router, and its events of a kind; ``cli``: one ``mmchat`` command.
- The served app: ``launch``, ``free_port``, ``sid_of``, ``text`` and the page's output order (``IMAGE``, ...);
  ``sample_image``; Chromium's path and arguments and two image helpers for the browser tests; VICUNA_V1 (the
  system sentence LLaVA-1.5 was trained with).
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from chat.events import Delta, Done, Status, ToolFinished, ToolStarted
from chat.toolbox import ToolOutput

# Output order of every page endpoint (the session State is not an API value).
IMAGE, THUMBS, VERSIONS, CHAT, STATUS, TRACE, PLOT, SCORES, EXPORT, CHAT_INPUT = range(10)


# The system sentence LLaVA-1.5 was fine-tuned with (haotian-liu/LLaVA llava/conversation.py, conv_vicuna_v1),
# written here independently of chat/prompt_format.py.
VICUNA_V1 = ("A chat between a curious user and an artificial intelligence assistant. "
             "The assistant gives helpful, detailed, and polite answers to the user's questions.")


# -- chat models ---------------------------------------------------------------------------------------------------
class ScriptedChat:
    """Answers in order (the last one repeats; ``endless``: the first one's words forever, for Stop), option
    log-probabilities from ``choice`` (-9 for an option it does not name). ``choose`` (classify's constrained
    choice) exists only when a ``choice`` table is given."""

    def __init__(self, *answers: str, choice: dict[str, float] | list[dict[str, float]] | None = None,
                 endless: bool = False):
        self.answers = list(answers) or ["It is a cat."]
        self.choice, self.endless = choice, endless
        self.choices: list[tuple] = []  # (turns, options) of every constrained choice
        self.turns: list[list] = []  # the conversation of every streamed answer
        self.seen: list[list] = []  # the conversation of every generate()

    def enqueue(self, *answers: str) -> None:
        self.answers.extend(answers)

    def _answer(self, calls: int) -> str:
        return self.answers[min(calls, len(self.answers)) - 1]

    # as a MultimodalChat (LocalMultimodalChatModel calls these)
    def choice_logprobs(self, turns, options):
        """A list of tables: one per choice, in order (the last one repeats)."""
        self.choices.append((turns, list(options)))
        table = self.choice[min(len(self.choices), len(self.choice)) - 1] if isinstance(self.choice, list) else self.choice
        return [(table or {}).get(o, -9.0) for o in options]

    def stream(self, turns, options=None, cancel=None):
        self.turns.append(turns)
        words = self._answer(len(self.turns)).split(" ")
        i = 0
        while self.endless or i < len(words):
            if cancel is not None and cancel.is_set():
                return
            yield words[i % len(words)] + ("" if i == len(words) - 1 and not self.endless else " ")
            i += 1
            time.sleep(0.001 if self.endless else 0)

    # as a tools.classify.ChatModel
    def generate(self, turns):
        self.seen.append(list(turns))
        return self._answer(len(self.seen))

    @property
    def choose(self):
        return self.choice_logprobs if self.choice is not None else None


def local(chat: ScriptedChat):
    from chat.lc_model import LocalMultimodalChatModel

    return LocalMultimodalChatModel(chat=chat)


def run(router, session, text="", **kwargs) -> list:
    """One turn's events; it ends with exactly one Done."""
    events = list(router.respond(session, text, **kwargs))
    assert isinstance(events[-1], Done) and sum(isinstance(e, Done) for e in events) == 1
    return events


def of(events, kind) -> list:
    return [e for e in events if isinstance(e, kind)]


# -- a router for the page -------------------------------------------------------------------------------------------
class ScriptedRouter:
    """Router stand-in with the real interface: respond(session, text, *, action, arguments, cancel, sink)."""

    def __init__(self, delay: float = 0.05):
        self.delay = delay
        self.marks: dict[str, list] = {}
        self.calls: list[tuple] = []

    def _tool(self, session, tool, arguments, summary, started, button=False, **made):
        output = ToolOutput(tool, summary, summary, arguments, **made)
        entry = output.entry(time.time() - started, "button" if button else "slash command")
        index = session.add_trace(entry)
        return index, ToolFinished(trace_index=index, entry=entry, output=output)

    def respond(self, session, text, *, action=None, arguments=None, cancel=None, sink=None):
        from tools.scoring import ScoreResult, score_chart
        from tools.som import highlight_marks, parse_mark_refs, set_of_mark

        self.calls.append((text, action, arguments))
        arguments = arguments or {}
        refs = [session.record().current_id] if session.active else []
        session.add_message("user", text, images=refs)
        used: list[int] = []
        started = time.time()
        answer = ""
        if action == "score":
            labels = arguments["labels"]
            scores = list(np.linspace(1.0, 0.2, len(labels)) / np.linspace(1.0, 0.2, len(labels)).sum())
            result = ScoreResult(labels=labels, scores=scores, mode="softmax", model=arguments.get("model", "clip"))
            yield ToolStarted("score", arguments, decision="button")
            index, event = self._tool(session, "score", arguments, result.summary(), started, button=True,
                                      plot=score_chart(result), data={"result": result})
            used.append(index)
            yield event
            answer = f"The best label is {result.best}."
        elif action == "som":
            image, marks, masks = set_of_mark(session.pixels(), max_regions=6)
            self.marks[session.id] = masks
            yield ToolStarted("som", {}, decision="button")
            index, event = self._tool(session, "som", {}, f"{len(marks)} marks", started, button=True, overlay=image)
            used.append(index)
            yield event
            answer = f"I numbered {len(marks)} regions."
        elif action in ("edit", "remove"):
            record = session.record()
            yield ToolStarted(action, arguments, decision="button")
            for step in range(1, 3):
                yield Status(f"Diffusion step {step}/2", step / 2)
                time.sleep(self.delay)
            new = ImageOps.invert(session.pixels())
            version = session.add_version(record.id, new, note=f"{action}: {arguments.get('instruction', '')}".strip())
            index, event = self._tool(session, action, arguments, f"made {version.id}", started, button=True,
                                      new_versions=[version.id])
            used.append(index)
            yield event
            answer = f"Here is {version.id}."
        else:
            yield Status("Loading llava", 0.5)
            words = f"You asked: {text}. This is a scripted answer with several words".split()
            for word in words:
                if cancel is not None and cancel.is_set():
                    break
                time.sleep(self.delay)
                answer += word + " "
                yield Delta(word + " ")
            ids = parse_mark_refs(text)
            if ids and session.id in self.marks:
                overlay = highlight_marks(session.pixels(), self.marks[session.id], ids)
                index, event = self._tool(session, "highlight", {"marks": ids}, f"highlighted {ids}", started,
                                          overlay=overlay)
                used.append(index)
                yield event
            answer = answer.strip()
        if action is not None:
            yield Delta(answer)
        message = session.add_message("assistant", answer, images=refs)
        message.trace = used
        yield Done(message, cancelled=bool(cancel is not None and cancel.is_set()))


# -- the CLI ---------------------------------------------------------------------------------------------------------
def cli(capsys, *argv) -> tuple[int, str, str]:
    """``mmchat ARGV`` run in this process as a person runs it: (exit code, stdout, stderr), argparse's own errors
    included."""
    from chat.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# -- images and the served app ---------------------------------------------------------------------------------------
def sample_image(path: Path, size=(320, 240)) -> Path:
    image = Image.new("RGB", size, (200, 220, 240))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((w // 8, h // 6, w // 2, h // 2), fill=(40, 160, 60))
    draw.ellipse((w // 2, h // 2, w - w // 8, h - h // 10), fill=(240, 200, 30))
    image.save(path)
    return path


def text(message: dict) -> str:
    """The text of a chat message as the client returns it (Gradio 6: a list of parts)."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(app, **options):
    """Serve ``app`` on a free local port (``options``: more of ``launch``'s, e.g. ``max_file_size``); its URL."""
    port = free_port()
    app.queue()
    app.launch(prevent_thread_lock=True, server_port=port, server_name="127.0.0.1", quiet=True,
               enable_monitoring=False, **options)
    return f"http://127.0.0.1:{port}/"


def sid_of(app, client) -> str:
    """The session id the server keeps for this client (the State is not an API value)."""
    return [s["id"] for s in app.mmchat_handlers.store.list()][0]


# -- the browser ----------------------------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path("/tmp/mmchat-shots")


def image_src(page, selector: str = "#image img") -> str:
    return page.locator(selector).first.get_attribute("src") or ""


def wait_src_change(page, old: str, selector: str = "#image img") -> str:
    page.wait_for_function(
        "([sel, old]) => { const i = document.querySelector(sel); return i && i.src && i.src !== old && i.complete; }",
        arg=[selector, old])
    return image_src(page, selector)


__all__ = ["ARGS", "CHAT", "CHAT_INPUT", "CHROMIUM", "EXPORT", "IMAGE", "PLOT", "SCORES", "SHOTS", "STATUS", "THUMBS",
           "TRACE", "VERSIONS", "VICUNA_V1", "ScriptedChat", "ScriptedRouter", "cli", "free_port", "image_src", "launch", "local", "of",
           "run", "sample_image", "sid_of", "text", "wait_src_change"]
