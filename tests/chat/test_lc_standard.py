"""LangChain's own standard test suites (langchain-tests) on the local model, tiny profile.

Tool calling, tool choice, structured output and base64 image inputs are on. The tiny LLaVA has random weights,
so what a test checks about the *content* of a reply (that ``magic_function(3)`` is called with 3, that the
greeting tool is asked for a pirate style) is up to chance: those tests are expected to fail on the tiny
profile, each with its reason, and must pass with real weights (``MMCHAT_STANDARD_CONFIG=configs/default.yaml``
runs the same suites on the configured checkpoint, without those expectations). Every other test runs; the only
skips are tests that need the internet. The two image tests download a diagram with ``httpx.get`` before
sending it as base64: here that one URL is answered with a real photo from scikit-image (a PNG, as the
diagram is), so they run offline with everything else unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from chat.lc_model import LocalMultimodalChatModel

ROOT = Path(__file__).resolve().parents[2]
REAL = os.environ.get("MMCHAT_STANDARD_CONFIG")  # a config with real weights: the content tests must pass too
RANDOM = "the tiny LLaVA has random weights: what it writes does not follow the request"


def on_random_weights(reason: str):
    return pytest.mark.xfail(not REAL, reason=f"{RANDOM} ({reason})", strict=False)


@pytest.fixture(scope="module")
def standard_chat(tiny_config):
    """One MultimodalChat for every model the suites make (they make one per test)."""
    if REAL:
        from chat.assistant import Assistant
        from chat.config import load_config

        return Assistant(load_config(REAL)).mllm
    from chat.assistant import Assistant

    return Assistant(tiny_config).mllm


class _Params:
    chat = None

    @pytest.fixture(autouse=True)
    def _chat(self, standard_chat):
        type(self).chat = standard_chat

    @property
    def chat_model_class(self) -> type[LocalMultimodalChatModel]:
        return LocalMultimodalChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"chat": self.chat, "config": REAL or "configs/tiny.yaml"}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "vip_llava"  # another chat model of the config, named as under models:

    @property
    def enable_vcr_tests(self) -> bool:
        return True  # the streaming benchmark: a local model makes no HTTP request to record


class TestLocalModelUnit(_Params, ChatModelUnitTests):
    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        config = str(ROOT / "configs" / "tiny.yaml")
        return {"MMCHAT_CONFIG": config}, {}, {"model_name": str(Path(os.environ["MMCHAT_TINY_DIR"]) / "llava")}


class TestLocalModelIntegration(_Params, ChatModelIntegrationTests):
    @on_random_weights("it must call magic_function with input 3")
    def test_tool_calling(self, model) -> None:
        super().test_tool_calling(model)

    @on_random_weights("it must call magic_function with input 3")
    async def test_tool_calling_async(self, model) -> None:
        await super().test_tool_calling_async(model)

    @on_random_weights("in JSON mode it must write the keys 'setup' and 'punchline' it is asked for")
    def test_json_mode(self, model) -> None:
        super().test_json_mode(model)

    @on_random_weights("it must copy the Chinese and Japanese company names into the arguments")
    def test_unicode_tool_call_integration(self, model, **kwargs) -> None:
        super().test_unicode_tool_call_integration(model, **kwargs)

    @pytest.fixture(autouse=True)
    def _offline_picture(self, monkeypatch):
        """The suite's picture download (``httpx.get`` of one URL) answered with a photo of a cat, as PNG."""
        import io

        import httpx
        from PIL import Image
        from skimage import data

        from langchain_tests.integration_tests import chat_models

        buffer = io.BytesIO()
        Image.fromarray(data.chelsea()).save(buffer, format="PNG")
        real_get = httpx.get

        def get(url, *args, **kwargs):
            if url.endswith("/src/images/agentic-rag-output.png"):
                return httpx.Response(200, content=buffer.getvalue())
            return real_get(url, *args, **kwargs)

        monkeypatch.setattr(chat_models.httpx, "get", get)
