"""``mmchat doctor [--config C] [--json] [--model NAME]...``: check every configured model (see :mod:`chat.doctor`).

One line per model on stdout as each finishes; one line per problem on stderr; exit 0 when every model passes,
1 otherwise. ``--json`` prints one object with a row per model instead of the lines.
"""

from __future__ import annotations

import sys

from chat.commands.common import add_common, emit, load


def register(sub) -> None:
    p = sub.add_parser(
        "doctor", help="check every configured model: cached, size, loads, self-checks, one inference, memory",
        description="Check each model of the config, one at a time: where it loads from (local folder, Hugging "
                    "Face cache, or not downloaded), whether all the files a load reads are there and their size, "
                    "whether it loads (with the load-time self-checks), one tiny inference with its time, and the "
                    "memory it took. Nothing is downloaded ('mmchat pull' does that). Exit code 0 when every model "
                    "passes, 1 otherwise, with one line per problem on stderr.",
    )
    p.add_argument("--model", action="append", metavar="NAME", help="check only this model (repeatable)")
    add_common(p)
    p.set_defaults(func=run)


def size(n: int | None) -> str:
    from chat.pull import gib

    return "-" if n is None else gib(n)


def line(row) -> str:
    status = "ok  " if row.ok else "FAIL"
    where = row.location or row.path
    parts = [f"{status}  {row.name:<13} {row.source:<13} {where}", size(row.size_bytes) if row.cached else "-"]
    if row.loads:
        parts.append(f"load {row.load_s:.2f} s")
    if row.inference_s is not None:
        parts.append(f"{row.inference} {row.inference_s:.2f} s: {row.result}")
    if row.cuda_peak_bytes is not None:
        parts.append(f"CUDA peak {size(row.cuda_peak_bytes)}")
    elif row.rss_bytes is not None and row.loads:
        parts.append(f"RSS +{size(row.rss_bytes)}")
    parts += [f"note: {note}" for note in row.notes]
    return "  ".join(parts)


def _environment(config, registry) -> dict:
    import torch
    from huggingface_hub import constants

    info = {"device": registry.device, "dtype": str(registry.dtype_for(config.models[config.chat_model]))
            .replace("torch.", ""), "hf_cache": str(constants.HF_HUB_CACHE),
            "offline": bool(constants.is_offline_mode()), "torch": torch.__version__}
    if registry.device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    return info


def run(args) -> int:
    from chat.commands.common import stderr_progress
    from chat.config import config_path
    from chat.doctor import run_doctor
    from chat.errors import UserError
    from chat.registry import ModelRegistry

    config = load(args)
    unknown = sorted(set(args.model or []) - set(config.models))
    if unknown:
        raise UserError(f"No model named {', '.join(unknown)} in the config; choose from {', '.join(config.models)}.")
    env = _environment(config, ModelRegistry(config))
    if not args.json:
        gpu = f", {env['gpu']}" if "gpu" in env else ""
        print(f"mmchat doctor: {config_path(args.config)} on {env['device']}{gpu} ({env['dtype']}); Hugging Face "
              f"cache {env['hf_cache']}{' (offline)' if env['offline'] else ''}", flush=True)
    progress = stderr_progress if sys.stderr.isatty() else None
    on_row = None if args.json else (lambda row: print(line(row), flush=True))
    _, rows = run_doctor(config, args.model, progress=progress, on_row=on_row)
    problems = [p for row in rows for p in row.problems]
    if args.json:
        emit(args, {"config": str(config_path(args.config)), **env, "ok": not problems,
                    "models": [row.as_dict() for row in rows], "problems": problems})
    else:
        passed = sum(row.ok for row in rows)
        print(f"{passed} of {len(rows)} models passed", flush=True)
    for problem in problems:
        print(f"mmchat: {problem}", file=sys.stderr, flush=True)
    return 0 if not problems else 1
