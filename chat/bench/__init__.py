"""Benchmarks, one module each, run as ``python -m chat.bench {cpu,memory,gpu} [--json]``.

- :mod:`chat.bench.cpu`: new labels on a seen image (embedding cache vs none), follow-up vs first
  time-to-first-token on a random-weight LLaVA of meaningful size, marker and Set-of-Mark time on 2048 px
  images, router overhead per turn.
- :mod:`chat.bench.memory`: the profile's model memory from the full-size architectures (meta device).
- :mod:`chat.bench.gpu`: LLaVA-1.5-7B dimensions on a GPU: VRAM, TTFT, decode tokens/s; fp16 vs NF4, with
  a static KV cache and torch.compile; one process per step (:mod:`chat.bench.gpu_worker`, run by
  :mod:`chat.bench.steps` under one deadline), figures beside time from :mod:`chat.bench.gpu_stats`, the
  checkpoint complete only with its marker (:mod:`chat.bench.checkpoint`).

Shared pieces: :mod:`chat.bench.timing` (medians, ratios), :mod:`chat.bench.architectures` (full-size
configs in code), :mod:`chat.bench.models` (random-weight checkpoints built locally), :mod:`chat.bench.scoring`
(the embedding-cache benchmark that cpu runs; also ``python -m chat.bench.scoring``). Nothing is downloaded.
"""


class BenchUnavailable(RuntimeError):
    """A benchmark cannot run here (e.g. no CUDA device); the message is one line for the user."""
