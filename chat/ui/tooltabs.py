"""The tool tabs' buttons (Score, Set-of-Mark, Edit, Remove, Generate): their fields become a tool's arguments
and the chat line is the equivalent slash command (what ran, so typing it or Regenerate repeats it). Each is
answered in turn, like a chat message (see :mod:`chat.ui.turns`)."""

from __future__ import annotations

from typing import Iterator

from chat.errors import UserError
from chat.ui import forms
from chat.ui.context import Page
from chat.ui.forms import SCORE_MODELS, parse_labels
from chat.ui.turns import Pending, TurnRunner
from chat.ui.views import View


class ToolTabs:
    def __init__(self, page: Page, turns: TurnRunner):
        self.page = page
        self.turns = turns

    def _tool(self, session_id, tool: str, args: dict, tab: str, note: str | None = None) -> Iterator[View]:
        args = {k: v for k, v in args.items() if v is not None}
        yield from self.turns.send(session_id, Pending(forms.echo(tool, args), action=tool, arguments=args, tab=tab,
                                                       note=note))

    def score(self, session_id: str | None, labels: str, model: str = "clip") -> Iterator[View]:
        if model not in SCORE_MODELS:
            raise UserError(f"Unknown scoring model '{model}'; choose clip or siglip.")
        parsed = parse_labels(labels)
        if len(parsed) > self.page.limits.max_labels:
            raise UserError(f"{len(parsed)} labels given; at most {self.page.limits.max_labels} can be scored at once.")
        note = None
        if len(parsed) == 1 and model == "clip":
            note = ("With one label CLIP always gives 1.00: its scores are shares among the labels given. "
                    "Add other labels to compare, or use SigLIP, which scores each label on its own.")
        yield from self._tool(session_id, "score", {"labels": parsed, "model": model}, "score", note)

    def som(self, session_id: str | None) -> Iterator[View]:
        yield from self._tool(session_id, "som", {}, "edit")

    def _diffusion_options(self, steps, seed, guidance=None) -> dict:
        from chat.config import MAX_STEPS

        options = {"steps": forms.parse_steps(steps, MAX_STEPS), "seed": forms.parse_seed(seed)}
        if guidance is not None:
            options["guidance_scale"] = forms.parse_guidance(guidance)
        return options

    def edit(self, session_id: str | None, instruction: str, steps=None, seed=None, guidance=None) -> Iterator[View]:
        instruction = forms.words(instruction)
        if not instruction:
            raise UserError("Type an edit instruction, e.g. 'make it snowy'.")
        args = {"instruction": instruction, **self._diffusion_options(steps, seed, guidance)}
        yield from self._tool(session_id, "edit", args, "edit")

    def remove(self, session_id: str | None, target: str = "", steps=None, seed=None) -> Iterator[View]:
        """Remove the marked object; ``target`` says what it is (e.g. 'the dog'), which steers the fill."""
        target = forms.words(target)
        args = {"target": target or None, **self._diffusion_options(steps, seed)}
        yield from self._tool(session_id, "remove", args, "edit")

    def generate(self, session_id: str | None, prompt: str, sketch=None, seed=None, size: str = "512x512",
                 steps=None) -> Iterator[View]:
        """Generate: a new image from the prompt; with a drawing on the sketch pad the drawing is kept as an
        image of its own and conditions the picture (ControlNet scribble). The chat line is the equivalent
        slash command, so Regenerate repeats it: the same picture when a seed is given, another take (a new
        random seed) when the seed box is empty; the trace shows every seed used."""
        from chat.ui.sketch import sketch_drawing

        prompt = forms.words(prompt)
        if not prompt:
            raise UserError("Describe the picture to make, e.g. 'a cat on a sofa'.")
        options = self._diffusion_options(steps, seed)
        drawing = sketch_drawing(sketch)
        if drawing is None:
            (width, height), note = forms.parse_size(size)
            yield from self._tool(session_id, "generate", {"prompt": prompt, "width": width, "height": height,
                                                            **options}, "generate", note)
            return
        session, note = self.page.session(session_id)
        with self.page.locked(session.id):
            record = session.add_image(drawing, name="sketch", limit=self.page.limits.max_images_per_session)
            self.page.store.save(session)
        yield from self._tool(session.id, "sketch", {"prompt": prompt, "image": record.id, **options}, "generate")
