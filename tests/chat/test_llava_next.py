"""LLaVA-NeXT (llava-hf/llava-v1.6-mistral-7b-hf geometry, tiny depth and width) as the chat model.

The tiny profile with one line changed (``models.llava`` pointing at the tiny LLaVA-NeXT), loaded by the same
registry and loaders as any checkpoint, in NF4. Anyres gives each image size its own number of placeholder tokens,
so these tests use real photos of different aspect ratios and check that the KV and vision caches key every image's
run by its own count: a follow-up reuses the prefix and answers exactly as without the caches, and another image or
a moved marker never reuses a cache it does not match.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

from chat.mllm import GenerationOptions, MultimodalChat, Turn

from tests.conftest import ROOT, TINY_CONFIG

OPTIONS = GenerationOptions(max_new_tokens=8)


def switched(text: str) -> str:
    """A config's text with ``models.llava``'s path moved to the tiny LLaVA-NeXT, whatever else its entry says."""
    new, count = re.subn(r'"\{tiny\}/llava"', '"{tiny}/llava_next"', text)
    assert count == 1
    return new


@pytest.fixture(scope="module")
def next_config_path(tmp_path_factory, tiny_dir):
    """configs/tiny.yaml with one line changed, as the README tells users to switch checkpoints: the path only."""
    import yaml

    text = TINY_CONFIG.read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("config") / "tiny-llava-next.yaml"
    path.write_text(switched(text), encoding="utf-8")
    changed = [a for a, b in zip(text.splitlines(), path.read_text(encoding="utf-8").splitlines()) if a != b]
    assert len(changed) == 1 and changed[0].lstrip().startswith("llava:")
    before, after = yaml.safe_load(text), yaml.safe_load(path.read_text(encoding="utf-8"))
    assert after["models"]["llava"].pop("path") == "{tiny}/llava_next"
    before["models"]["llava"].pop("path")
    assert after == before
    return path


@pytest.fixture(scope="module")
def chat(next_config_path):
    from chat.config import load_config
    from chat.registry import ModelRegistry

    config = load_config(next_config_path, data_dir=os.environ["MMCHAT_TEST_DATA"])
    return MultimodalChat(ModelRegistry(config))


def _photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


@pytest.fixture(scope="module")
def wide():
    return _photo("chelsea")  # 451 x 300, a cat


@pytest.fixture(scope="module")
def square():
    return _photo("astronaut")  # 512 x 512


@pytest.fixture(scope="module")
def tall():
    return _photo("chelsea").transpose(Image.Transpose.ROTATE_90).crop((0, 0, 300, 420))


def _marked(image: Image.Image, x: int, y: int) -> Image.Image:
    out = image.copy()
    ImageDraw.Draw(out).ellipse((x - 30, y - 30, x + 30, y + 30), outline=(255, 0, 0), width=5)
    return out


def _runs(chat, turns) -> list[tuple[int, int]]:
    """(first position, token count) of each image's placeholder run in the prompt, by the processor's counts."""
    inputs = chat.inputs(turns)
    ids = inputs["input_ids"][0]
    where = (ids == chat.bundle.model.config.image_token_id).nonzero().flatten().tolist()
    counts = chat.image_token_counts(inputs["image_sizes"].tolist())
    runs, start = [], 0
    for count in counts:
        runs.append((where[start], count))
        start += count
    assert start == len(where)
    return runs


def test_one_line_of_the_config_loads_llava_next_in_nf4(chat, assistant):
    import bitsandbytes as bnb
    import torch

    model = chat.bundle.model
    assert type(model).__name__ == "LlavaNextForConditionalGeneration"
    assert type(chat.bundle.processor).__name__ == "LlavaNextProcessor"
    linears = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    language = [m for n, m in linears.items() if n.startswith("model.language_model")]
    kept = [m for n, m in linears.items() if not n.startswith("model.language_model")]
    assert language and all(isinstance(m, bnb.nn.Linear4bit) for m in language)
    assert all(m.in_features % 64 == 0 for m in language)
    assert kept and not any(isinstance(m, bnb.nn.Linear4bit) for m in kept)  # tower, projector, lm_head
    # the pixel preparation must know that LLaVA-NeXT tiles the image itself and must not pad it to square
    assert chat.bundle.trained_aspect_ratio == "anyres"
    assert assistant.mllm.bundle.trained_aspect_ratio == "pad"


def test_the_prompt_is_the_checkpoints_own_template(chat, wide):
    prompt, images = chat.render([Turn("system", "Be brief."), Turn("user", "What is it?", [wide]),
                                  Turn("assistant", "A cat."), Turn("user", "Sure?")])
    # llava-hf's chat_template.json as the hub ships it, its literal "<\s> " included
    assert prompt == "<<SYS>>\nBe brief.\n<</SYS>>\n\n[INST] <image>\nWhat is it? [/INST] A cat.<\\s> [INST] Sure? [/INST]"
    assert images == [wide]


def test_the_one_line_switch_prompts_it_as_it_was_fine_tuned(chat, assistant):
    """Only the path changed: LLaVA-NeXT gets its own template, one image per prompt and its 4096-token context
    (a square photo alone is 2,928 tokens: LLaVA-1.5's 2048 would not hold it); LLaVA-1.5 keeps its own."""
    from chat.lc_model import LocalMultimodalChatModel

    model = LocalMultimodalChatModel(chat=chat)
    assert chat.template() is None  # the checkpoint's own (its exact prompt: the test above)
    assert (model.max_images(), model.context_window()) == (1, 4096)
    assert chat.registry.entry("llava").notes == []
    llava_1_5 = LocalMultimodalChatModel(chat=assistant.mllm)
    assert "USER: " in assistant.mllm.template() and (llava_1_5.max_images(), llava_1_5.context_window()) == (1, 2048)


def test_prompt_keys_left_from_llava_1_5_are_used_as_asked_with_a_note(tiny_dir, tmp_path):
    """A config that still sets LLaVA-1.5's keys by hand after the path moved to LLaVA-NeXT is not silently
    prompted in the wrong format: the keys are used as written, and the load line says what they are for."""
    from chat.config import load_config
    from chat.lc_model import LocalMultimodalChatModel
    from chat.registry import ModelRegistry

    text = switched(TINY_CONFIG.read_text(encoding="utf-8"))
    text = text.replace('"{tiny}/llava_next", quantize: nf4}',
                        '"{tiny}/llava_next", quantize: nf4, chat_template: vicuna_v1, max_images: 2, '
                        'context_tokens: 3000}')
    path = tmp_path / "stale.yaml"
    path.write_text(text, encoding="utf-8")
    lines = []
    registry = ModelRegistry(load_config(path, data_dir=os.environ["MMCHAT_TEST_DATA"]),
                             progress=lambda name, fraction, message: lines.append(message))
    chat = MultimodalChat(registry)
    model = LocalMultimodalChatModel(chat=chat)
    prompt, _ = chat.render([Turn("user", "What is it?")])
    assert prompt.startswith("A chat between a curious user") and prompt.endswith("USER: What is it? ASSISTANT:")
    assert (model.max_images(), model.context_window()) == (2, 3000)
    note = ("chat_template vicuna_v1 is the training format of LLaVA-1.5, but this checkpoint is LLaVA-NeXT; "
            "it is used as asked (without the key: checkpoint)")
    assert registry.entry("llava").notes == [note]
    assert any(line.startswith("loaded llava") and line.endswith(f"; note: {note}") for line in lines), lines


def test_each_aspect_ratio_gets_its_own_token_count_and_the_answer_streams(chat, wide, square, tall):
    counts = {}
    chat.vision_cache.clear()
    for name, image in (("wide", wide), ("square", square), ("tall", tall)):
        turns = [Turn("user", "Describe the image.", [image])]
        pieces = list(chat.stream(turns, GenerationOptions(max_new_tokens=12)))
        assert chat.last_stats["images_encoded"] == 1
        assert pieces and "".join(pieces).strip() == chat.generate(turns, GenerationOptions(max_new_tokens=12))
        [(_, count)] = _runs(chat, turns)
        counts[name] = count
    # square: a 336 px overview (24 x 24 patches) + a 2 x 2 grid of tiles (48 x 48) with a newline token per row
    assert counts["square"] == 576 + 48 * 48 + 48
    assert len(set(counts.values())) == 3, counts


def test_a_follow_up_reuses_the_prefix_and_answers_as_without_caches(chat, wide, square):
    chat.prefix_cache.clear()
    chat.vision_cache.clear()
    first = [Turn("user", "What is in the picture?", [wide])]
    answer = chat.generate(first, OPTIONS)
    first_tokens = chat.last_stats["prompt_tokens"]
    follow = first + [Turn("assistant", answer), Turn("user", "And what colour is it?")]
    cached = chat.generate(follow, OPTIONS)
    assert chat.last_stats["images_encoded"] == 0 and chat.last_stats["reused_tokens"] >= first_tokens
    assert cached == chat.generate(follow, OPTIONS, reuse=False)
    # a second, larger image (5 tiles; the first has 3 and is now zero-padded to 5 in the batch) keeps the first
    # image's key: everything before the new image is reused, only the new image is encoded
    second = follow + [Turn("assistant", cached), Turn("user", "Compare it with this one.", [square])]
    cached = chat.generate(second, OPTIONS)
    stats = chat.last_stats
    (_, _), (square_start, square_count) = _runs(chat, second)
    assert stats["images_encoded"] == 1 and first_tokens < stats["reused_tokens"] <= square_start
    assert cached == chat.generate(second, OPTIONS, reuse=False)
    third = second + [Turn("assistant", cached), Turn("user", "Which is brighter?")]
    cached = chat.generate(third, OPTIONS)
    assert chat.last_stats["images_encoded"] == 0
    assert chat.last_stats["reused_tokens"] > square_start + square_count
    assert cached == chat.generate(third, OPTIONS, reuse=False)


def test_two_images_of_different_sizes_are_keyed_run_by_run(chat, wide, tall):
    """Another image, a moved marker or the images in another order never reuse a cache they do not match."""
    a, b = _marked(wide, 100, 100), _marked(tall, 150, 300)
    turns = [Turn("user", "What is in the red circles?", [a, b])]
    (a_start, a_count), (b_start, b_count) = _runs(chat, turns)
    assert a_count != b_count  # split equally, one image's key would cover the other's tokens
    chat.prefix_cache.clear()
    chat.generate(turns, OPTIONS)
    cases = {
        "second marker moved": [_marked(wide, 100, 100), _marked(tall, 150, 320)],
        "first marker moved": [_marked(wide, 120, 100), b],
        "order swapped": [b, a],
        "another second image": [a, _marked(tall.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 150, 300)],
    }
    limits = {"second marker moved": b_start, "first marker moved": a_start, "order swapped": a_start,
              "another second image": b_start}
    for case, images in cases.items():
        changed = [Turn("user", "What is in the red circles?", images)]
        answer = chat.generate(changed, OPTIONS)
        stats = chat.last_stats
        assert stats["reused_tokens"] <= limits[case], case
        assert stats["images_encoded"] == (0 if case == "order swapped" else 1), case  # features by content
        assert answer == chat.generate(changed, OPTIONS, reuse=False), case
        chat.prefix_cache.clear()
        chat.generate(turns, OPTIONS)  # the original conversation is cached again for the next case
    same = chat.generate(turns, OPTIONS)
    assert chat.last_stats["images_encoded"] == 0 and chat.last_stats["reused_tokens"] > b_start + b_count - 1
    assert same == chat.generate(turns, OPTIONS, reuse=False)


def test_sequence_keys_follow_the_processors_counts():
    import torch

    from chat.turn_cache import images_within, sequence_keys

    image = 9
    ids = torch.tensor([1, 5, image, image, image, image, image, 6, image, image, image, 7])
    keys = sequence_keys(ids, image, ["a" * 40, "b" * 40], [5, 3])
    a, b = -1 - int("a" * 15, 16), -1 - int("b" * 15, 16)
    assert keys.tolist() == [1, 5, a, a, a, a, a, 6, b, b, b, 7]
    assert [images_within([5, 3], n) for n in (0, 4, 5, 7, 8)] == [0, 0, 1, 1, 2]
    with pytest.raises(ValueError, match="8 image tokens"):
        sequence_keys(ids, image, ["a" * 40, "b" * 40], [4, 3])


def test_the_constrained_choice_matches_without_caches(chat, wide, tall):
    turns = [Turn("user", "Is it a cat?", [wide, tall])]
    fresh = chat.choice_logprobs(turns, ["yes", "no"], reuse=False)
    chat.prefix_cache.clear()
    assert chat.choice_logprobs(turns, ["yes", "no"]) == pytest.approx(fresh, abs=1e-4)
    assert chat.choice_logprobs(turns, ["yes", "no"]) == pytest.approx(fresh, abs=1e-4)  # from the cached prefix
    assert chat.last_stats["images_encoded"] == 0


def test_token_estimate_counts_each_images_own_tokens(chat, wide, square):
    from langchain_core.messages import HumanMessage

    from chat.lc_model import LocalMultimodalChatModel, image_part

    model = LocalMultimodalChatModel(chat=chat)
    message = HumanMessage(content=[image_part(wide), image_part(square), {"type": "text", "text": "compare"}])
    estimate = model.get_num_tokens_from_messages([message])
    exact = chat.inputs([Turn("user", "compare", [wide, square])])["input_ids"].shape[1]
    assert abs(estimate - exact) <= 1  # the processor adds <s>; each image counts 1464 and 2928 tokens, not 576


def test_ask_as_a_user_would_with_the_one_line_config(next_config_path, tmp_path):
    photo = tmp_path / "cat.png"
    _photo("chelsea").save(photo)
    env = {**os.environ, "MMCHAT_CONFIG": str(next_config_path)}
    done = subprocess.run([sys.executable, "-m", "chat", "ask", str(photo), "What is in the red circle?",
                           "--point", "120,90", "--json"], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout.strip().splitlines()[-1])["answer"], str)


def test_the_apps_router_answers_and_follows_up_from_the_cache(next_config_path):
    """Through the app's own path (Router.respond: constrained choice, then the streamed answer) on a real photo:
    the follow-up's choice and answer encode no image and prefill only the new words."""
    from chat.assistant import Assistant
    from chat.config import load_config
    from chat.router import Router
    from chat.session import Session

    assistant = Assistant(load_config(next_config_path, data_dir=os.environ["MMCHAT_TEST_DATA"]))
    mllm, router = assistant.mllm, Router(assistant)
    router.choice_margin = 1e9  # always answer in words (the choice still runs)
    stats = []
    choose = mllm.choice_logprobs

    def recording(*args, **kwargs):
        out = choose(*args, **kwargs)
        stats.append(dict(mllm.last_stats))
        return out

    mllm.choice_logprobs = recording
    session = Session()
    session.add_image(_photo("coffee"))  # 600 x 400
    first = list(router.respond(session, "What is on the plate?"))[-1].message.content
    assert isinstance(first, str) and stats[-1]["images_encoded"] == 1
    list(router.respond(session, "And what colour is the cup?"))
    choice, answer = stats[-1], dict(mllm.last_stats)
    assert choice["images_encoded"] == 0 and choice["reused_tokens"] > 2144  # the photo's 2,144 tokens
    # the answer's prompt leaves the choice's after the user's words: only the template's " [/INST]" is new
    closing = len(mllm.bundle.processor.tokenizer(" [/INST]", add_special_tokens=False)["input_ids"])
    assert answer["images_encoded"] == 0 and answer["reused_tokens"] >= answer["prompt_tokens"] - closing - 1
