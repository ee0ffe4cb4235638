"""What a tool is to the chat: one :class:`ToolSpec` per tool (the table is :data:`chat.toolbox.TOOLS`).

    >>> spec = TOOLS["score"]
    >>> spec.parse("siglip: cat | dog")              # {'model': 'siglip', 'labels': ['cat', 'dog']}
    >>> spec.command({"labels": ["cat", "dog"]})     # '/score cat | dog'
    >>> out = spec.execute(ToolContext(assistant, session), {"labels": ["cat", "dog"]})   # a ToolOutput

In the shape of smolagents' ``Tool`` and llm's ``Tool``: a name, a description, an input schema (the tool's own,
from ``tools/``, plus the chat's ``image`` id field) and ``run(ctx, args) -> ToolOutput``; and what the chat needs
besides: the slash command (``usage``, ``options``, :meth:`ToolSpec.parse` and :meth:`ToolSpec.command`, which
read each other back), and whether its result ends the turn (``final``). Free text reaches a tool through the chat
model's own tool call (:mod:`chat.router`), its arguments generated under the schema.
``/help``, slash commands, the router's tool list, the LangChain tools and the CLI verbs all derive from it.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field, ValidationError, create_model

from chat.errors import UserError, describe, explain
from chat.session import Session, TraceEntry
from tools.diffusion import parse_size

Progress = Callable[[int, int], None]  # progress(step, total) while a tool runs (diffusion steps)
IMAGE_HELP = "Id of the image, e.g. 'img1' or 'img1.v2'; leave empty for the active image."
IMAGE_ID = re.compile(r"^(img\d+(?:\.v\d+)?)\b")
_OPTION = re.compile(r"(?:^|\s)--([A-Za-z_-]+)(?:\s*=\s*|\s+)(\"[^\"]*\"|\S+)")  # a value with spaces: "in quotes"


class Cancelled(Exception):
    """Raised by a progress callback to stop a running tool."""


@dataclass
class ToolOutput:
    """What a tool produced: text for the model and the person, images, data, and what the trace keeps."""

    tool: str
    text: str
    summary: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)  # the arguments actually used (seed, image id, ...)
    new_versions: list[str] = field(default_factory=list)  # version ids created (edits, new images)
    plot: Image.Image | None = None  # e.g. the bar chart of scores
    overlay: Image.Image | None = None  # e.g. markers or Set-of-Mark drawn on the image (not a version)
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # the tool's structured result (score: {"result": ...})

    def __str__(self) -> str:  # what a LangChain ToolMessage carries
        return self.text

    @property
    def ok(self) -> bool:
        return self.error is None

    def entry(self, seconds: float, decision: str) -> TraceEntry:
        """The trace's record of this call."""
        return TraceEntry(tool=self.tool, arguments=dict(self.arguments), seconds=seconds, summary=self.summary,
                          error=self.error, decision=decision)


def failed(tool: str, message: str, arguments: dict | None = None) -> ToolOutput:
    return ToolOutput(tool=tool, text=f"Error: {message}", summary=message, arguments=dict(arguments or {}),
                      error=message)


@dataclass
class ToolContext:
    """What a tool runs with: the assistant (config, models, caches), the session whose images it reads and
    writes, a progress callback; and for the CLI a config with its flags applied, the markers' masks and the
    few settings its flags give beyond the schema."""

    assistant: Any
    session: Session
    progress: Progress | None = None
    config: Any = None  # None: the assistant's
    chat_model: Any = None  # None: the assistant's (local, or remote_llm's)
    masks: dict[int, np.ndarray] | None = None  # marker index -> its region (SAM objects, a --mask file)
    settings: dict[str, Any] = field(default_factory=dict)  # e.g. caption max_new_tokens, find model and sam

    def __post_init__(self) -> None:
        if self.config is None:
            self.config = self.assistant.config

    @property
    def models(self):
        return self.assistant.registry

    def chat(self):
        """The chat model as the tools see it (:class:`tools.classify.ChatModel`)."""
        from chat.toolbox.chat_model import ToolChat

        return ToolChat(self.chat_model if self.chat_model is not None else self.assistant.chat_model)

    def image(self, ref: str | None):
        """(record, version id, pixels) of an image reference (None: the active image)."""
        version = self.session.version(ref)
        return self.session.record(ref), version.id, self.session.pixels(version.id)


def _typed(schema: type[BaseModel], name: str, raw: str) -> Any:
    """A value as typed, converted when its field takes numbers or booleans; anything else is passed on as
    written, so the schema names the problem ('--steps=1e999' -> 'Invalid steps ...')."""
    info = schema.model_fields.get(name)
    kinds = set(typing.get_args(info.annotation) or (info.annotation,)) if info is not None else set()
    if bool in kinds and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if int in kinds and re.fullmatch(r"[+-]?\d+", raw):
        return int(raw)
    if float in kinds and re.fullmatch(r"[+-]?\d+(\.\d+)?", raw):
        return float(raw)
    return raw


@dataclass(frozen=True, eq=False)
class ToolSpec:
    """One tool of the chat (see the module's docstring); ``run(ctx, args)`` takes the validated schema."""

    name: str
    input: type[BaseModel]  # the tool's schema, from tools/ (no image ids)
    run: Callable[[ToolContext, Any], ToolOutput]
    summary: str  # one line: /help and the model's tool list
    usage: str  # the slash command as /help shows it
    slash: str = ""  # the command word (default: the name)
    text: str | None = None  # the field the text after the command fills
    options: Mapping[str, str] = field(default_factory=dict)  # --option -> field ("size": width and height)
    final: bool = False  # its confirmation is the whole reply (no answer from the model after it)
    image_help: str | None = IMAGE_HELP  # the chat's image id field; None: the tool takes no image
    read: Callable[[str], dict] | None = None  # the command's text -> arguments (default: {text: the text})
    write: Callable[[dict], str] | None = None  # arguments -> the command's text (default: the text field)
    defaults: Callable[[Any], dict] | None = None  # arguments the config supplies when they are not given
    description: str = ""  # default: the schema's docstring

    # -- what it takes ---------------------------------------------------------------------------
    @property
    def command_name(self) -> str:
        return self.slash or self.name

    @cached_property
    def schema(self) -> type[BaseModel]:
        """The chat's schema: the tool's, plus ``image`` (a session image id) for a tool that works on one."""
        if self.image_help is None:
            return self.input
        return create_model(self.input.__name__, __base__=self.input, __doc__=self.input.__doc__,
                            image=(str | None, Field(None, description=self.image_help)))

    @property
    def image(self) -> bool:
        """Whether it works on an image of the session (its schema has an image field)."""
        return "image" in self.schema.model_fields

    @property
    def help(self) -> str:
        """What it does, for a model: the description, else the schema's docstring."""
        return " ".join((self.description or self.input.__doc__ or self.name).split())

    def validate(self, args: Mapping[str, Any], config: Any = None) -> BaseModel:
        """The arguments checked once, by the schema (the config's defaults and limits applied)."""
        given = {**(self.defaults(config) if self.defaults and config is not None else {}), **args}
        context = {"max_labels": config.limits.max_labels} if config is not None else None
        return self.schema.model_validate(given, context=context)

    def execute(self, ctx: ToolContext, args: Mapping[str, Any]) -> ToolOutput:
        """Validate and run; every failure, bad arguments included, comes back as an error ToolOutput."""
        try:
            valid = self.validate(args, ctx.config)
            return ctx.models.retry_on_oom(lambda: self.run(ctx, valid), f"the {self.name} tool")
        except ValidationError as exc:
            return failed(self.name, explain(exc, tool=self.name, schema=self.schema), dict(args))
        except Cancelled:
            return failed(self.name, "Cancelled.", dict(args))
        except Exception as exc:  # noqa: BLE001 - a tool failure is a result, never an exception
            return failed(self.name, describe(exc), dict(args))

    # -- slash commands and free text ------------------------------------------------------------
    def parse(self, rest: str) -> dict[str, Any]:
        """The arguments of ``/command REST``: ``--option value`` pairs (anywhere), a leading image id, then the
        text (see ``read``). UserError for an option the tool does not have."""
        args: dict[str, Any] = {}

        def take(match: re.Match) -> str:
            name, value = match.group(1).lower(), match.group(2)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if name not in self.options:
                hint = ", ".join(f"--{o}" for o in self.options) or "none"
                raise UserError(f"/{self.command_name} has no option --{name}; its options are: {hint}.")
            key = self.options[name]
            if key == "size":
                try:
                    args["width"], args["height"] = parse_size(value)
                except UserError:
                    raise UserError(f"--size takes WIDTHxHEIGHT in pixels, e.g. 640x448, not '{value}'.") from None
            else:
                args[key] = _typed(self.schema, key, value)
            return " "

        if self.options:
            rest = " ".join(_OPTION.sub(take, rest).split())
        match = IMAGE_ID.match(rest.strip())
        if match and self.image:
            args["image"], rest = match.group(1), rest.strip()[match.end():]
        rest = rest.strip()
        if self.read is not None:
            args.update(self.read(rest))
        elif self.text is not None and (rest or self.schema.model_fields[self.text].is_required()):
            args[self.text] = _typed(self.schema, self.text, rest)  # a required one empty: the schema says so
        return args

    def command(self, args: Mapping[str, Any]) -> str:
        """The slash command that runs exactly ``args`` (:meth:`parse` reads it back to them)."""
        words = [f"/{self.command_name}"]
        if self.image and args.get("image"):
            words.append(str(args["image"]))
        text = self.write(dict(args)) if self.write is not None else (
            str(args[self.text]) if self.text is not None and args.get(self.text) is not None else "")
        if text:
            words.append(text)
        for option, key in self.options.items():
            if key == "size" and args.get("width") is not None and args.get("height") is not None:
                words.append(f"--size {args['width']}x{args['height']}")
            elif args.get(key) is not None and key != "size":
                value = str(args[key]).lower() if isinstance(args[key], bool) else str(args[key])
                words.append(f'--{option} "{value}"' if not value or re.search(r"\s", value) else f"--{option} {value}")
        return " ".join(words)


__all__ = ["IMAGE_HELP", "Cancelled", "Progress", "ToolContext", "ToolOutput", "ToolSpec", "failed"]
