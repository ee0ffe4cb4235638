"""``python -m chat.bench {cpu,memory,gpu} [--json]``: the benchmarks, one command each.

Bad arguments end with exit code 2 and one line on stderr; so does the gpu command without a CUDA device.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys

from chat.bench import BenchUnavailable


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    from chat.bench.gpu import DEADLINE_S, MODES

    parser = _Parser(prog="python -m chat.bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="bench", metavar="{cpu,memory,gpu}", parser_class=_Parser)

    cpu = sub.add_parser("cpu", help="CPU benchmarks: embedding cache, follow-up TTFT, markers/Set-of-Mark, router, find")
    cpu.add_argument("--quick", action="store_true", help="tiny sizes and few runs (a smoke test, seconds)")
    cpu.add_argument("--runs", type=_positive, default=None, help="timed runs per figure (median reported)")
    cpu.add_argument("--only", action="append", choices=["scoring", "followup", "markers", "router", "grounding", "structured"],
                     help="run only these parts (repeatable)")
    cpu.add_argument("--quantize", choices=["none", "nf4"], default="none",
                     help="quantization of the benchmark LLaVA's language model (default none: float32)")
    cpu.add_argument("--threads", type=_positive, default=None,
                     help="torch CPU threads (default: torch's own, one per core)")
    cpu.add_argument("--json", action="store_true", help="print one JSON object")

    memory = sub.add_parser("memory", help="each profile's weights, peaks and worst tool switch, from the "
                                          "full-size architectures (meta)")
    memory.add_argument("--config", default=None, help="profile YAML (default $MMCHAT_CONFIG, else every shipped profile: "
                             "configs/gpu-8gb, -12gb, -16gb and default.yaml)")
    memory.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="dtype the profile gets on this device when its dtype is auto (default cuda)")
    memory.add_argument("--json", action="store_true", help="print one JSON object")

    gpu = sub.add_parser("gpu", help="LLaVA-1.5-7B dimensions (random weights) on a GPU: fp16 vs NF4, static cache + "
                                     "compile; one process per step under one deadline")
    gpu.add_argument("--tokens", type=_positive, default=128, help="new tokens per generation (forced; default 128)")
    gpu.add_argument("--runs", type=_positive, default=3, help="timed generations per mode (median reported)")
    gpu.add_argument("--modes", default=",".join(MODES),
                     help=f"comma-separated subset of {','.join(MODES)} (default: all)")
    gpu.add_argument("--prompt", default="Describe the image in detail.", help="text of the user turn")
    gpu.add_argument("--workdir", default=None,
                     help="where the random fp16 checkpoint is saved and reused when complete (default: a temp dir)")
    gpu.add_argument("--out", default=None,
                     help="folder for gpu.json (rewritten after every step) and each step's JSON and logs "
                          "(default: WORKDIR/results)")
    gpu.add_argument("--deadline", type=_positive, default=DEADLINE_S,
                     help=f"seconds for the whole run: a step still running then is stopped (default {DEADLINE_S})")
    gpu.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                     help="cpu: the same steps on a tiny LLaVA, to check the machinery without a GPU")
    gpu.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _clean(value):
    """JSON without NaN/inf (null instead)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bench is None:
        parser.print_help()
        return 2
    if args.bench == "memory" and args.config is None:
        args.config = os.environ.get("MMCHAT_CONFIG")  # None: every shipped profile
    elif getattr(args, "config", "unset") is None:
        from chat.config import config_path

        args.config = str(config_path())
    if args.bench == "gpu":
        from chat.bench.gpu import parse_modes

        try:
            args.modes = parse_modes(args.modes)
        except ValueError as exc:
            parser.error(str(exc))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here downloads; fail fast if something tries
    module = importlib.import_module(f"chat.bench.{args.bench}")
    try:
        result, text = module.run(args)
    except BenchUnavailable as exc:
        print(f"chat.bench {args.bench}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"chat.bench {args.bench}: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(_clean(result)) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
