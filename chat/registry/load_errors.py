"""A failed load as one sentence that says which of the usual causes it is and what fixes it.

transformers, diffusers and huggingface_hub wrap the hub's errors in ``OSError``s whose text varies by library
(``cached_file``, ``_get_model_file``, ``load_config``), but they keep the original exception in the chain
(``raise ... from e``, or implicitly as ``__context__``). The kind is read from the chain's types first
(``GatedRepoError``, ``RepositoryNotFoundError``, ``RevisionNotFoundError``, ``LocalEntryNotFoundError``,
``OfflineModeIsEnabled``, ``EntryNotFoundError``), then from the libraries' texts:

- ``not_cached``: a hub id not (fully) in the local cache and no way to download it (offline, no connection);
- ``no_repo``: no such repository on the hub (or a private one the token cannot see);
- ``gated``: a gated repository whose licence is not accepted, or no token;
- ``no_revision``: the configured revision does not exist;
- ``no_weights``: the checkpoint (folder or repository) has no weights file the loaders read;
- ``not_checkpoint``: a folder that is empty or has no ``config.json`` / ``model_index.json``;
- ``self_check``: the processor and the model disagree (:mod:`chat.processor_check`);
- ``memory``; ``other``: anything else, with the library's first line.
"""

from __future__ import annotations

import re
from pathlib import Path

from chat.checkpoint_files import NoWeightsError
from chat.processor_check import SelfCheckError

_WEIGHT_NAMES = ("safetensors", "pytorch_model", ".bin", "diffusion_pytorch_model")
_FILE_NAMED = re.compile(r"(?:a file named|no file named|files named)\s+\(?'?([\w.\-/]+)")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and all(exc is not e for e in seen):
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _is_hub_id(path: str) -> bool:
    return not path.startswith(("/", ".", "~")) and not Path(path).exists()


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.is_offline_mode())
    except Exception:  # noqa: BLE001
        return False


def classify(path: str, exc: BaseException) -> str:
    """The kind of a load failure (see the module's docstring)."""
    from huggingface_hub import errors as hub

    chain = _chain(exc)
    text = " ".join(str(e) for e in chain).lower()
    has = lambda *types: any(isinstance(e, types) for e in chain)  # noqa: E731
    if has(SelfCheckError):
        return "self_check"
    if has(NoWeightsError):
        return "no_weights"
    if has(MemoryError) or "out of memory" in text:
        return "memory"
    if has(hub.GatedRepoError) or "access a gated repo" in text or "cannot access gated repo" in text:
        return "gated"
    if has(hub.RevisionNotFoundError) or "is not a valid git identifier" in text:
        return "no_revision"
    if has(hub.RepositoryNotFoundError) or "is not a valid model identifier" in text:
        return "no_repo"
    named = _FILE_NAMED.search(text)
    file_missing = named is not None or has(hub.EntryNotFoundError)
    if _is_hub_id(path) and (
        has(hub.LocalEntryNotFoundError, hub.OfflineModeIsEnabled, ConnectionError)
        or any(type(e).__name__ in ("ConnectError", "ConnectTimeout") for e in chain)
        or "couldn't connect" in text or "outgoing traffic has been disabled" in text
        or (file_missing and _offline())
    ):
        return "not_cached"
    folder = Path(path)
    if folder.is_dir() and not any((folder / f).is_file() for f in ("config.json", "model_index.json")):
        return "not_checkpoint"
    if file_missing:
        name = named.group(1) if named else ""
        return "no_weights" if any(w in name for w in _WEIGHT_NAMES) or not name else "not_checkpoint"
    return "other"


def _missing_file(exc: BaseException) -> str:
    for e in _chain(exc):
        found = _FILE_NAMED.search(str(e))
        if found:
            return found.group(1).rstrip(".'")
    return ""


def explain(name: str, path: str, what: str, exc: BaseException, revision: str | None = None) -> tuple[str, str]:
    """``(kind, sentence)`` for a failed load of model ``name`` from ``path``."""
    kind = classify(path, exc)
    where_key = f"'models.{name}.path'"
    if kind == "self_check":
        return kind, f"Checkpoint '{path}' for model '{name}' failed its load-time self-check: {exc}."
    if kind == "memory":
        return kind, (f"Not enough memory to load model '{name}' ({path}); lower memory_budget_gb or use a smaller "
                      "checkpoint.")
    if kind == "gated":
        return kind, (f"Model '{name}': '{path}' is a gated repository; accept its licence at "
                      f"https://huggingface.co/{path} and log in with 'hf auth login' (or set HF_TOKEN).")
    if kind == "no_revision":
        return kind, f"Model '{name}': revision '{revision}' does not exist in '{path}'; fix 'models.{name}.revision'."
    if kind == "no_repo":
        return kind, (f"Model '{name}': there is no repository '{path}' on the Hugging Face Hub (or it is private "
                      f"and your token cannot see it); check {where_key}.")
    if kind == "not_cached":
        return kind, (f"Model '{name}' ({path}) is not (fully) in the local Hugging Face cache and cannot be "
                      f"downloaded here (offline or no connection); run 'mmchat pull' on a connected machine, or point "
                      f"{where_key} at a local folder.")
    if kind == "no_weights":
        folder = next((e.folder for e in _chain(exc) if isinstance(e, NoWeightsError)), path)
        where = f" in {folder}" if folder != path else ""
        return kind, (f"Checkpoint '{path}' for model '{name}' has no weights file{where} (neither safetensors nor "
                      f".bin); it is incomplete: download it again ('mmchat pull') or fix {where_key}.")
    if kind == "not_checkpoint":
        folder = Path(path)
        if folder.is_dir() and not any(folder.iterdir()):
            return kind, f"Checkpoint folder '{path}' for model '{name}' is empty; fix {where_key} or download it again."
        missing = _missing_file(exc) or "config.json"
        return kind, (f"Checkpoint '{path}' for model '{name}' has no {missing}: it is not a Hugging Face "
                      f"checkpoint of a {what}; fix {where_key}.")
    text = str(exc).strip()
    first = text.splitlines()[0][:200] if text else type(exc).__name__
    return kind, f"Checkpoint '{path}' for model '{name}' is not a usable {what}: {first}"
