"""The tools as LangChain ``StructuredTool``s bound to one session: the only adapter layer.

    >>> tools = {t.name: t for t in make_tools(assistant, session)}
    >>> out = run_tool(tools["score"], {"labels": ["cat", "dog"]})      # a ToolOutput, never an exception
    >>> out.text, out.plot, out.new_versions

Each tool's arguments are its pydantic ``*Input`` schema (from ``tools/``), so LangChain's ``bind_tools``
shows a model exactly what the typed function accepts. An adapter resolves image ids through the session
(``img1`` = current version, ``img1.v2`` = that version), takes markers from the image's record, calls the
typed function, stores new images as versions (``edit``/``remove``) or new images (``generate``/``sketch``)
and returns a :class:`ToolOutput`. Every failure, bad arguments included, comes back as a ToolOutput whose
text is ``"Error: <one sentence>"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from langchain_core.tools import StructuredTool
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from chat.errors import UserError, describe
from tools.caption import CaptionInput, VqaInput
from tools.classify import ClassifyInput
from tools.edit import EditInput, RemoveInput
from tools.markers import Outside
from tools.scoring import ScoreInput
from tools.som import Method, SetOfMarkInput

Progress = Callable[[int, int], None]  # progress(step, total) during diffusion
IMAGE_FIELD = dict(description="Id of the image, e.g. 'img1' or 'img1.v2'; leave empty for the active image.")


class Cancelled(Exception):
    """Raised by a progress callback to stop a running tool."""


@dataclass
class ToolOutput:
    """What a tool produced: text for the model and the person, plus images and the trace summary."""

    tool: str
    text: str
    summary: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)  # the arguments actually used (seed, image id, ...)
    new_versions: list[str] = field(default_factory=list)  # version ids created (edits, new images)
    plot: Image.Image | None = None  # e.g. the bar chart of scores
    overlay: Image.Image | None = None  # e.g. markers or Set-of-Mark drawn on the image (not a version)
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # tool-specific extras (som: marks, masks, version)

    def __str__(self) -> str:  # what a ToolMessage carries
        return self.text

    @property
    def ok(self) -> bool:
        return self.error is None


def failed(tool: str, message: str, arguments: dict | None = None) -> ToolOutput:
    return ToolOutput(tool=tool, text=f"Error: {message}", summary=message, arguments=dict(arguments or {}),
                      error=message)


def explain(tool: str, exc: ValidationError, schema: type[BaseModel] | None = None) -> str:
    """One sentence for the first problem in a tool's arguments."""
    err = exc.errors()[0]
    name = ".".join(str(x) for x in err["loc"]) or "arguments"
    if err["type"] == "extra_forbidden":
        known = ", ".join(schema.model_fields) if schema is not None else ""
        return f"'{name}' is not an argument of {tool}" + (f" (it takes {known})." if known else ".")
    if err["type"] == "missing":
        return f"The {tool} tool needs '{name}'."
    msg = err["msg"].removeprefix("Value error, ").rstrip(".")
    return f"Invalid {name} for {tool}: {msg[0].lower() + msg[1:]}."


# --------------------------------------------------------------------------------------------
# Schemas of the tools that have none in tools/ with an image field
# --------------------------------------------------------------------------------------------
def with_image(schema: type[BaseModel], description: str = IMAGE_FIELD["description"]) -> type[BaseModel]:
    """``schema`` plus the chat's ``image`` field (an image id of the session)."""
    return create_model(schema.__name__, __base__=schema, __doc__=schema.__doc__,
                        image=(str | None, Field(None, description=description)))


SKETCH_FIELD = ("Id of the sketch image, e.g. 'img2' (dark lines on a light background or light lines on a dark "
                "one); leave empty for the active image.")


class MarkInput(BaseModel):
    """Draw the markers the person placed on an image (red circles, arrows, boxes) as an overlay, e.g. to
    show what a question refers to."""

    model_config = ConfigDict(extra="forbid")

    outside: Outside = Field("none", description="blur or grey everything outside the marked regions")
    image: str | None = Field(None, **IMAGE_FIELD)


class SomInput(SetOfMarkInput):
    """Split an image into numbered regions (Set-of-Mark) so that regions can be referred to as [1], [2], ..."""

    max_regions: int | None = Field(None, ge=1, le=200, description="at most this many regions; empty: default")
    method: Method | None = Field(None, description="'slic' (fast, no model) or 'sam' (Segment Anything)")
    image: str | None = Field(None, **IMAGE_FIELD)


# --------------------------------------------------------------------------------------------
# Adapters
# --------------------------------------------------------------------------------------------
class SessionTools:
    """The typed tool functions applied to one session's images."""

    def __init__(self, assistant, session, progress: Progress | None = None):
        self.assistant = assistant
        self.session = session
        self.progress = progress
        self.config = assistant.config
        self.models = assistant.registry

    def _image(self, ref: str | None):
        """(record, version id, pixels) of an image reference (None: the active image)."""
        version = self.session.version(ref)
        return self.session.record(ref), version.id, self.session.pixels(version.id)

    def caption(self, a: CaptionInput) -> ToolOutput:
        from tools.caption import caption

        _, vid, image = self._image(a.image)
        text = caption(self.models, image, a.prefix, prompt=self.config.tools.caption_prompt)
        return ToolOutput("caption", f"Caption of {vid}: {text}", text, {"image": vid, "prefix": a.prefix})

    def vqa(self, a: VqaInput) -> ToolOutput:
        from tools.caption import answer_question

        _, vid, image = self._image(a.image)
        answer = answer_question(self.models, image, a.question)
        return ToolOutput("vqa", f"Answer to '{a.question}' about {vid} (BLIP): {answer}", answer,
                          {"image": vid, "question": a.question})

    def score(self, a: ScoreInput) -> ToolOutput:
        from tools.scoring import score_chart, score_labels

        limit = self.config.limits.max_labels
        if len(a.labels) > limit:
            raise UserError(f"{len(a.labels)} labels given; at most {limit} can be scored at once.")
        record, vid, image = self._image(a.image)
        markers = list(record.markers) if a.region else []
        result = score_labels(self.models, image, a.labels, model=a.model, markers=markers,
                              templates=self.config.tools.prompt_templates, cache=self.assistant.embedding_cache)
        where = f"the marked region of {vid}" if result.region else vid
        text = f"{a.model.upper()} scores for {where} ({result.mode}): {result.summary()}"
        return ToolOutput("score", text, result.summary(), {"image": vid, "labels": a.labels, "model": a.model,
                          "region": result.region}, plot=score_chart(result),
                          data={"table": result.table(), "result": result})

    def classify(self, a: ClassifyInput) -> ToolOutput:
        from tools.classify import classify

        _, vid, image = self._image(a.image)
        from chat.toolbox.chat_model import ToolChat

        result = classify(self.models, image, ToolChat(self.assistant.chat_model), rounds=a.rounds,
                          cache=self.assistant.embedding_cache, templates=self.config.tools.prompt_templates)
        return ToolOutput("classify", f"Classification of {vid}: {result.label}, {result.outline()}.",
                          result.summary(), {"image": vid, "rounds": a.rounds}, data={"result": result})

    def mark(self, a: MarkInput) -> ToolOutput:
        from tools.markers import draw_markers

        record, vid, image = self._image(a.image)
        if not record.markers:
            raise UserError(f"Image {record.id} has no markers; click on the image to place one first.")
        overlay = draw_markers(image, record.markers, outside=a.outside)
        n = len(record.markers)
        text = f"Drew {n} marker{'s' if n > 1 else ''} on {vid}."
        return ToolOutput("mark", text, text, {"image": vid, "outside": a.outside, "markers": n}, overlay=overlay)

    def som(self, a: SomInput) -> ToolOutput:
        from tools.som import set_of_mark

        _, vid, image = self._image(a.image)
        method = a.method or self.config.tools.som_method
        regions = a.max_regions or self.config.tools.som_max_regions
        sam = self.models.get("sam") if method == "sam" else None
        marked, marks, masks = set_of_mark(image, regions, method, sam, fill=a.fill, boundaries=a.boundaries)
        n = len(marks)
        text = f"Numbered {n} region{'s' if n != 1 else ''} of {vid} (Set-of-Mark); refer to them as [1] to [{n}]."
        return ToolOutput("som", text, f"{n} region{'s' if n != 1 else ''}", {"image": vid, "method": method,
                          "max_regions": regions}, overlay=marked,
                          data={"version": vid, "marks": marks, "masks": masks, "image": marked})

    def _diffusion(self, a) -> dict:
        return {"steps": a.steps or self.config.tools.edit_steps, "seed": a.seed, "progress": self.progress}

    def edit(self, a: EditInput) -> ToolOutput:
        from tools.edit import edit_image, inpaint, mask_from_markers

        tools = self.config.tools
        record, vid, image = self._image(a.image)
        common = self._diffusion(a)
        guidance = a.guidance_scale if a.guidance_scale is not None else tools.guidance_scale
        if a.region and record.markers:
            mode = "inpaint"
            mask = mask_from_markers(record.markers, image.size)
            result = inpaint(self.models, image, mask, a.instruction, guidance_scale=guidance,
                             dilate=tools.mask_dilate, feather=tools.mask_feather, **common)
        else:
            mode = "pix2pix"
            result = edit_image(self.models, image, a.instruction, guidance_scale=guidance,
                                image_guidance_scale=tools.image_guidance_scale, **common)
        version = self.session.add_version(record.id, result.image, note=f"edit: {a.instruction}", parent=vid)
        used = {"image": vid, "instruction": a.instruction, "mode": mode, "steps": common["steps"],
                "seed": result.seed, "guidance_scale": guidance}
        text = f"Edited {vid} ({mode}, seed {result.seed}): the new version is {version.id}."
        return ToolOutput("edit", text, f"{version.id} ({mode}, seed {result.seed})", used, [version.id])

    def remove(self, a: RemoveInput) -> ToolOutput:
        from tools.edit import mask_from_markers, remove_object

        tools = self.config.tools
        record, vid, image = self._image(a.image)
        if not record.markers:
            raise UserError(f"To remove something, click on it in {record.id} first (it has no markers).")
        mask = mask_from_markers(record.markers, image.size)
        result = remove_object(self.models, image, mask, target=a.target, guidance_scale=tools.guidance_scale,
                               dilate=tools.mask_dilate, feather=tools.mask_feather, **self._diffusion(a))
        version = self.session.add_version(record.id, result.image, note=f"remove: {a.target}", parent=vid)
        used = {"image": vid, "target": a.target, "steps": self._diffusion(a)["steps"], "seed": result.seed}
        text = f"Removed {a.target} from {vid} (seed {result.seed}): the new version is {version.id}."
        return ToolOutput("remove", text, f"{version.id} (seed {result.seed})", used, [version.id])

    def _new_image(self, tool: str, image: Image.Image, name: str, used: dict, seed: int) -> ToolOutput:
        record = self.session.add_image(image, name=name, limit=self.config.limits.max_images_per_session)
        text = f"Made {record.id} ({image.width}x{image.height}, seed {seed})."
        return ToolOutput(tool, text, f"{record.current_id} (seed {seed})", used | {"seed": seed},
                          [record.current_id])

    def generate(self, a) -> ToolOutput:
        from tools.generate import generate_image

        common = self._diffusion(a)
        result = generate_image(self.models, a.prompt, size=(a.width, a.height),
                                guidance_scale=self.config.tools.guidance_scale, **common)
        used = {"prompt": a.prompt, "steps": common["steps"], "width": a.width, "height": a.height}
        return self._new_image("generate", result.image, f"generated: {a.prompt}", used, result.seed)

    def sketch(self, a) -> ToolOutput:
        from tools.generate import sketch_to_image

        _, vid, image = self._image(a.image)
        common = self._diffusion(a)
        result = sketch_to_image(self.models, image, a.prompt, size=a.size,
                                 guidance_scale=self.config.tools.guidance_scale, **common)
        used = {"prompt": a.prompt, "image": vid, "steps": common["steps"]}
        return self._new_image("sketch", result.image, f"sketch: {a.prompt} (from {vid})", used, result.seed)


def schemas() -> dict[str, type[BaseModel]]:
    """Tool name -> argument schema, in the order tools are offered (generate/sketch when available)."""
    from tools.generate import GenerateInput, SketchInput

    return {
        "caption": with_image(CaptionInput), "vqa": with_image(VqaInput), "score": with_image(ScoreInput),
        "classify": with_image(ClassifyInput), "mark": MarkInput, "som": SomInput, "edit": with_image(EditInput),
        "remove": with_image(RemoveInput), "generate": GenerateInput, "sketch": with_image(SketchInput, SKETCH_FIELD),
    }


def _adapter(name: str, schema: type[BaseModel], body: Callable[[Any], ToolOutput], models) -> Callable[..., ToolOutput]:
    def run(**kwargs: Any) -> ToolOutput:
        try:
            arguments = schema.model_validate(kwargs)
            return models.retry_on_oom(lambda: body(arguments), f"the {name} tool")
        except ValidationError as exc:
            return failed(name, explain(name, exc, schema), kwargs)
        except Cancelled:
            return failed(name, "Cancelled.", kwargs)
        except Exception as exc:  # noqa: BLE001 - a tool failure is a result, never an exception
            return failed(name, describe(exc), kwargs)

    return run


def make_tools(assistant, session, *, progress: Progress | None = None) -> list[StructuredTool]:
    """One StructuredTool per tool, bound to ``session`` (images, markers, versions)."""
    impl = SessionTools(assistant, session, progress)
    tools = []
    for name, schema in schemas().items():
        description = " ".join((schema.__doc__ or name).split())
        tools.append(StructuredTool.from_function(_adapter(name, schema, getattr(impl, name), impl.models), name=name,
                                                  description=description, args_schema=schema))
    return tools


def run_tool(tool: StructuredTool, arguments: dict[str, Any]) -> ToolOutput:
    """Invoke a tool; bad arguments and any other failure come back as an error ToolOutput."""
    try:
        out = tool.invoke(dict(arguments))
    except ValidationError as exc:
        schema = tool.args_schema if isinstance(tool.args_schema, type) else None
        return failed(tool.name, explain(tool.name, exc, schema), arguments)
    except Exception as exc:  # noqa: BLE001
        return failed(tool.name, describe(exc), arguments)
    return out if isinstance(out, ToolOutput) else ToolOutput(tool.name, str(out), str(out)[:200], dict(arguments))


__all__ = ["Cancelled", "MarkInput", "SomInput", "ToolOutput", "explain", "make_tools", "run_tool", "schemas"]
