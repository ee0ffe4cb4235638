"""``mmchat pull [--config C] [--dtype D] [--json]``: download every configured checkpoint up front (see
:mod:`chat.pull`): the plan and the free disk space first, then one progress bar per model."""

from __future__ import annotations

import sys

from chat.commands.common import add_common, emit, load


def register(sub) -> None:
    p = sub.add_parser(
        "pull", help="download every configured checkpoint now (only the files the loaders read)",
        description="Download every model of the config into the Hugging Face cache now, like 'ollama pull': only "
                    "the files the loaders read (safetensors, .bin only where a repository has no safetensors, the "
                    "fp16 variant of SD components when they run at float16), after checking that their total size "
                    "fits the free disk space. One progress bar per model. Run it again after an interruption: "
                    "finished files are kept. Local folders are left as they are; tiny checkpoints are built.",
    )
    p.add_argument("--dtype", choices=["auto", "float16", "float32", "bfloat16"], default="auto",
                   help="the dtype the models will run at, which decides the SD files (default: the config's on "
                        "this machine; float16 on a GPU); pass float16 to pull for a GPU box from another machine")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    from chat.commands.common import stderr_progress
    from chat.config import config_path
    from chat.pull import Puller, disk_problem, free_bytes, gib

    config = load(args)
    puller = Puller(config, None if args.dtype == "auto" else getattr(torch, args.dtype))
    plans = [puller.plan(name) for name in config.models]
    needed = sum(p.download_bytes for p in plans)
    free = free_bytes(puller.cache)
    if not args.json:
        print(f"mmchat pull: {len(plans)} models from {config_path(args.config)} into {puller.cache}", flush=True)
        for plan in plans:
            what = {"tiny": "tiny, built locally", "local folder": "local folder"}.get(plan.source)
            if what is None:
                cached = plan.total_bytes - plan.download_bytes
                what = "failed" if plan.problem else f"{len(plan.files)} files, {gib(plan.total_bytes)}" + \
                    (", all cached" if not plan.download_bytes else f", {gib(cached)} cached" if cached >= 2**20
                     else "") + (", fp16 variants" if any(".fp16." in f for f in plan.files) else "")
            print(f"  {plan.name:<13} {plan.path:<45} {what}", flush=True)
        print(f"{gib(needed)} to download, {gib(free)} free", flush=True)
    refused = disk_problem(needed, free, puller.cache)
    if refused is None:
        quiet = are_progress_bars_disabled()
        disable_progress_bars()  # our bar per model replaces huggingface_hub's per-file bars
        try:
            for plan in plans:
                if not plan.problem:
                    puller.download(plan, stderr_progress)
        finally:
            if not quiet:
                enable_progress_bars()
    problems = [refused] if refused else [p.problem for p in plans if p.problem]
    if args.json:
        emit(args, {"config": str(config_path(args.config)), "cache": str(puller.cache), "free_bytes": free,
                    "download_bytes": needed, "ok": not problems, "models": [p.as_dict() for p in plans],
                    "problems": problems})
    elif not refused:
        ready = sum(p.status in ("pulled", "cached", "local folder", "built") for p in plans)
        print(f"{ready} of {len(plans)} models ready", flush=True)
    for problem in problems:
        print(f"mmchat: {problem}", file=sys.stderr, flush=True)
    return 0 if not problems else 1
