"""The assistant: config, the model registry and the chat model, wired together once.

Everything is created lazily; building an Assistant loads no model.
"""

from __future__ import annotations

from functools import cached_property

from chat.config import Config
from chat.registry import ModelRegistry, Progress


class Assistant:
    def __init__(self, config: Config, progress: Progress | None = None):
        self.config = config
        self.registry = ModelRegistry(config, progress=progress)

    @cached_property
    def sessions(self):
        from chat.store import SessionStore

        return SessionStore(self.config.data_path, limits=self.config.limits)

    @cached_property
    def embedding_cache(self):
        from tools.scoring import EmbeddingCache

        return EmbeddingCache(self.config.cache.embedding_entries)

    @cached_property
    def candidate_cache(self):
        """Candidate regions of recent images for ``find`` (a second phrase on an image proposes none)."""
        from tools.grounding import CandidateCache

        return CandidateCache(4)

    @cached_property
    def mllm(self):
        """The multimodal chat model in turns (stream/generate): the local one, or the ``remote_llm`` server."""
        if self.config.remote_llm is not None:
            from chat.remote_llm import RemoteTurns, remote_chat_model

            return RemoteTurns(remote_chat_model(self.config.remote_llm, self.config.generation))
        from chat.mllm import MultimodalChat

        return MultimodalChat(self.registry)

    @cached_property
    def chat_model(self):
        """The LangChain chat model the router and the tools talk to: the local one, or ``remote_llm``'s server."""
        from chat.lc_model import make_chat_model

        return make_chat_model(self)

    @cached_property
    def router(self):
        """Routes chat messages to tools and the chat model (local, or ``remote_llm`` when configured)."""
        from chat.router import Router

        return Router(self)

    def generation_options(self, **overrides):
        from chat.mllm import GenerationOptions

        merged = self.config.generation.model_dump()
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return GenerationOptions(**merged)
