"""``mmchat doctor``: every configured model checked the way a user will use it, one at a time.

For each model: where it loads from (a local folder, the Hugging Face cache, or nowhere yet), whether everything a
load reads is there (:func:`chat.checkpoint_files.local_copy`) and its size on disk; then the load itself through
the registry (with the loaders' self-checks and notes), one tiny inference with its time (a short LLaVA answer
about a photo, CLIP/SigLIP scores, a BLIP caption or answer, one SAM mask, one diffusion step at a small size) and
the memory it took (process RSS, and CUDA bytes on a GPU). A model that is not downloaded is not loaded (doctor
never downloads: ``mmchat pull`` does). Each problem is one sentence.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from chat.checkpoint_files import local_copy
from chat.errors import ModelLoadError, describe
from chat.loaders import files_kind, loader_for

PROMPT = "a cat sitting on a sofa"


@dataclass
class Row:
    """What doctor found for one configured model (``--json`` prints these)."""

    name: str
    path: str
    source: str = ""  # local folder | hf cache | not cached
    location: str | None = None  # the folder a load reads
    cached: bool = False  # everything a load reads is on this machine
    size_bytes: int = 0  # on disk, of the files a load reads
    loads: bool | None = None  # None: not tried (not downloaded)
    load_s: float | None = None
    weights_bytes: int | None = None  # what the registry charges the budget
    notes: list[str] = field(default_factory=list)  # the loaders' notes (.bin, fp16 variant, filled fields)
    self_check: str | None = None
    inference: str | None = None  # what was run
    inference_s: float | None = None
    result: str | None = None
    rss_bytes: int | None = None  # process RSS growth across load + inference
    cuda_peak_bytes: int | None = None  # peak CUDA memory across load + inference (GPU only)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


class _Named:
    """A registry seen under the names the tools ask for (``blip_caption``) when the config uses other keys."""

    def __init__(self, registry, names: dict[str, str]):
        self.registry, self.names = registry, names

    def get(self, name: str):
        return self.registry.get(self.names.get(name, name))


def _rss() -> int | None:
    try:
        import os

        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _photo():
    from PIL import Image
    from skimage import data

    return Image.fromarray(data.chelsea()).convert("RGB")  # a real photo of a cat, 451x300


def _small_side(pipe) -> int:
    from tools.diffusion import native_side

    return max(64, native_side(pipe) // 4 // 8 * 8)  # 128 px for SD 1.5 (512) and the tiny ones shaped like it


def _pipe_call(pipe, **kwargs) -> str:
    import torch

    image = pipe(num_inference_steps=1, generator=torch.Generator("cpu").manual_seed(0), **kwargs).images[0]
    return f"{image.width}x{image.height} image"


def _inference(registry, name: str, kind: str, photo) -> tuple[str, Callable[[], str]]:
    """(what it runs, a function running it and summing up the result) for a model of loader ``kind``."""
    if kind == "load_mllm":
        from chat.mllm import GenerationOptions, MultimodalChat, Turn

        def answer() -> str:
            chat = MultimodalChat(registry, name)
            turns = [Turn("user", "What is in the image? Answer in a few words.", [photo])]
            return repr(chat.generate(turns, GenerationOptions(max_new_tokens=12), reuse=False)[:80])

        return "answer about a photo", answer
    if kind == "load_dual_encoder":
        from tools.scoring.core import score_labels

        def score() -> str:
            result = score_labels(registry, photo, ["a cat", "a dog"], model=name)
            return ", ".join(f"{label} {value:.2f}" for label, value in zip(result.labels, result.scores))

        return "scores for a cat photo", score
    if kind == "load_blip_caption":
        from tools.caption import caption

        return "caption of a photo", lambda: repr(caption(_Named(registry, {"blip_caption": name}), photo,
                                                            max_new_tokens=12))
    if kind == "load_blip_vqa":
        from tools.caption import answer_question

        return "answer to 'what animal is this?'", lambda: repr(answer_question(
            _Named(registry, {"blip_vqa": name}), photo, "what animal is this?", max_new_tokens=6))
    if kind == "load_sam":
        from tools.regions import sam_region

        def mask() -> str:
            region = sam_region(registry.get(name), photo, [(photo.width // 2, photo.height // 2)])
            return f"a mask of {int(region.sum())} pixels"

        return "SAM mask from a click", mask
    if kind == "load_controlnet":
        from tools.generate import controlnet_pipeline, scribble_from_sketch

        def sketch() -> str:
            pipe = controlnet_pipeline(_Named(registry, {"controlnet": name}))
            side = _small_side(pipe)
            scribble = scribble_from_sketch(photo.convert("L").convert("RGB"), (side, side))
            return _pipe_call(pipe, prompt=PROMPT, image=scribble, height=side, width=side)

        return "1 ControlNet step (with txt2img)", sketch

    def diffusion() -> str:
        import numpy as np
        from PIL import Image

        pipe = registry.get(name)
        side = _small_side(pipe)
        image = photo.resize((side, side))
        if kind.endswith("InstructPix2PixPipeline"):
            return _pipe_call(pipe, prompt="make it winter", image=image)
        if kind.endswith("InpaintPipeline"):
            mask = np.zeros((side, side), np.uint8)
            mask[side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 255
            return _pipe_call(pipe, prompt=PROMPT, image=image, mask_image=Image.fromarray(mask),
                              height=side, width=side)
        return _pipe_call(pipe, prompt=PROMPT, height=side, width=side)

    return "1 diffusion step", diffusion


def check_model(registry, name: str) -> Row:
    """Every check of one configured model; the registry is left without it loaded."""
    spec = registry.config.model(name)
    row = Row(name, spec.path)
    try:
        loader, what, _ = loader_for(name)
    except KeyError:
        row.problems.append(f"Model '{name}' has no loader; name it after a known kind (llava, clip, siglip, "
                            "blip_caption, blip_vqa, sam, pix2pix, inpaint, txt2img, controlnet).")
        return row
    import torch

    fp16 = registry.dtype_for(spec) == torch.float16
    tiny = registry.config.tiny_path
    building = tiny is not None and Path(spec.path).parent == tiny and not Path(spec.path).exists()
    copy = local_copy(spec.path, files_kind(name), fp16, spec.revision)
    row.source = "tiny, built on first use" if building else copy.source
    row.location = str(copy.folder) if copy.folder is not None else None
    row.cached, row.size_bytes = copy.complete, copy.nbytes
    if copy.source == "not cached" and not building and not spec.path.startswith(("/", ".", "~")):
        row.problems.append(f"Model '{name}' ({spec.path}) is not downloaded yet; run 'mmchat pull' (or point "
                            f"'models.{name}.path' at a local folder).")
        return row
    if copy.folder is not None and copy.missing and copy.source == "hf cache":
        row.problems.append(f"Model '{name}' ({spec.path}) is only partly in the Hugging Face cache (missing: "
                            f"{', '.join(copy.missing[:4])}); run 'mmchat pull' to complete it.")
    _load_and_run(registry, name, loader.__name__, row)
    return row


def _load_and_run(registry, name: str, kind: str, row: Row) -> None:
    import torch

    cuda = registry.device == "cuda" and torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss = _rss()
    start = time.perf_counter()
    try:
        registry.get(name)
    except ModelLoadError as exc:
        row.loads = False
        row.problems.append(str(exc))
        return
    row.loads, row.load_s = True, round(time.perf_counter() - start, 3)
    entry = registry.entry(name)
    row.weights_bytes, row.notes = entry.nbytes, list(entry.notes)
    if kind == "load_mllm":
        from chat.processor_check import self_check

        bundle = registry.get(name)
        row.self_check = f"one image = {self_check(bundle.processor, bundle.model)} image tokens, as the vision " \
                         "tower gives"
    if kind == "load_controlnet" and "txt2img" not in registry.config.models:
        row.problems.append(f"Model '{name}' needs a 'txt2img' pipeline in the config to run (it shares its parts).")
    else:
        what, run = _inference(registry, name, kind, _photo())
        row.inference = what
        start = time.perf_counter()
        try:
            row.result = run()
            row.inference_s = round(time.perf_counter() - start, 3)
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            row.problems.append(f"Model '{name}' loaded but its test inference ({what}) failed: {describe(exc)}")
    after = _rss()
    row.rss_bytes = after - rss if after is not None and rss is not None else None
    if cuda:
        row.cuda_peak_bytes = int(torch.cuda.max_memory_allocated())
    registry.unload_all()
    gc.collect()


def run_doctor(config, names: list[str] | None = None, progress=None, on_row: Callable[[Row], Any] | None = None):
    """Check every configured model (or ``names``) one after the other; the rows."""
    from chat.registry import ModelRegistry

    registry = ModelRegistry(config, progress=progress)
    rows = []
    for name in names or list(config.models):
        row = check_model(registry, name)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return registry, rows
