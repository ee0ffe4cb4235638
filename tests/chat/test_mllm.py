"""The local multimodal model: chat template prompts, multi-turn with images, streaming, cancel."""

import threading

import pytest
from PIL import Image
from pydantic import ValidationError

from chat.mllm import GenerationOptions, Turn


@pytest.fixture(scope="module")
def image():
    return Image.new("RGB", (64, 48), (200, 30, 30))


def test_prompt_comes_from_the_chat_template(assistant, image):
    prompt, images = assistant.mllm.render(
        [Turn("user", "what is this?", [image]), Turn("assistant", "a red square"), Turn("user", "and this?", [image])]
    )
    assert prompt.count("<image>") == 2 and len(images) == 2
    assert prompt.index("what is this?") < prompt.index("a red square") < prompt.index("and this?")


def test_streaming_yields_several_chunks(assistant, image):
    options = GenerationOptions(max_new_tokens=16)
    chunks = list(assistant.mllm.stream([Turn("user", "Describe the image.", [image])], options))
    assert len(chunks) >= 3 and all(isinstance(c, str) for c in chunks)


def test_cancel_stops_generation_early(assistant, image):
    options = GenerationOptions(max_new_tokens=200)
    full = list(assistant.mllm.stream([Turn("user", "Describe the image.", [image])], options))
    cancel = threading.Event()
    got = []
    for piece in assistant.mllm.stream([Turn("user", "Describe the image.", [image])], options, cancel=cancel):
        got.append(piece)
        if len(got) == 2:
            cancel.set()
    assert len(got) <= 3 < len(full)


def test_closing_the_stream_stops_the_worker(assistant, image):
    stream = assistant.mllm.stream([Turn("user", "hi", [image])], GenerationOptions(max_new_tokens=200))
    next(stream)
    stream.close()
    assert not any(t.name == "mmchat-generate" for t in threading.enumerate())


def test_greedy_is_deterministic_and_seeded_sampling_reproduces(assistant, image):
    turns = [Turn("user", "What colour is it?", [image])]
    assert assistant.mllm.generate(turns, GenerationOptions(max_new_tokens=8)) == \
        assistant.mllm.generate(turns, GenerationOptions(max_new_tokens=8))
    sampled = GenerationOptions(max_new_tokens=8, temperature=1.0, seed=7)
    assert assistant.mllm.generate(turns, sampled) == assistant.mllm.generate(turns, sampled)


def test_options_are_validated():
    with pytest.raises(ValidationError):
        GenerationOptions(max_new_tokens=0)
    with pytest.raises(ValidationError):
        GenerationOptions(temperature=-1)
    with pytest.raises(ValidationError):
        GenerationOptions(seed=2**40)


def test_choice_logprobs_scores_each_option(assistant, image):
    scores = assistant.mllm.choice_logprobs([Turn("user", "Pick one.", [image])], ["caption", "score", "answer"])
    assert len(scores) == 3 and all(s < 0 for s in scores)


def test_follow_up_reuses_the_prefix_and_matches_the_uncached_answer(assistant, image):
    options = GenerationOptions(max_new_tokens=12)
    mllm = assistant.mllm
    mllm.prefix_cache.clear()
    first = [Turn("user", "Describe the image.", [image])]
    answer = mllm.generate(first, options)
    assert mllm.last_stats["reused_tokens"] == 0
    follow = first + [Turn("assistant", answer), Turn("user", "And what colour is it?")]
    cached = mllm.generate(follow, options)
    stats = mllm.last_stats
    assert stats["images_encoded"] == 0 and stats["reused_tokens"] > 16  # the image tokens were not prefilled
    assert cached == mllm.generate(follow, options, reuse=False)


def test_an_image_is_encoded_once(assistant, image):
    mllm = assistant.mllm
    mllm.prefix_cache.clear()
    mllm.vision_cache.clear()
    before = mllm.vision_cache.encodes
    options = GenerationOptions(max_new_tokens=4)
    mllm.generate([Turn("user", "What is it?", [image])], options)
    mllm.prefix_cache.clear()
    mllm.generate([Turn("user", "Something else entirely: how big?", [image])], options)
    assert mllm.vision_cache.encodes - before == 1


def test_prefix_cache_never_claims_tokens_it_does_not_hold():
    """The last generated token is never fed to the model, so the KV cache is one shorter than the sequence;
    a follow-up that repeats the whole previous answer must still get a cache that matches ``keep``."""
    import torch
    from transformers import DynamicCache

    from chat.turn_cache import PrefixCache

    cache = DynamicCache()
    cache.update(torch.zeros(1, 2, 19, 4), torch.zeros(1, 2, 19, 4), layer_idx=0)
    sequence = torch.arange(20)  # prompt + answer; the cache covers the first 19 tokens
    prefix = PrefixCache(min_tokens=4)
    prefix.put(sequence, cache)
    follow_up = torch.cat([sequence, torch.tensor([7, 8, 9])])
    taken, keep = prefix.take(follow_up)
    assert taken is not None and keep == 19 and taken.get_seq_length() == keep


def test_another_image_with_the_same_text_is_not_answered_from_the_cache(assistant, image):
    """Images are the same placeholder tokens: the cache must key them by content, or a second session asking
    the same question about its own image would get the first session's answer."""
    options = GenerationOptions(max_new_tokens=12)
    mllm = assistant.mllm
    mllm.prefix_cache.clear()
    other = Image.new("RGB", (64, 48), (20, 40, 220))
    mllm.generate([Turn("user", "What is in the red circle?", [image])], options)
    cached = mllm.generate([Turn("user", "What is in the red circle?", [other])], options)
    stats = mllm.last_stats
    ids = mllm.inputs([Turn("user", "What is in the red circle?", [other])])["input_ids"][0]
    run_start = int((ids == mllm.bundle.model.config.image_token_id).nonzero()[0])
    assert stats["images_encoded"] == 1  # the new image was encoded...
    assert 0 < stats["reused_tokens"] <= run_start  # ...and nothing from its run on was reused (the system prompt was)
    assert cached == mllm.generate([Turn("user", "What is in the red circle?", [other])], options, reuse=False)


def test_choice_then_answer_prefill_the_image_once(assistant, image):
    """The router's constrained choice and the answer that follows share the conversation prefix."""
    mllm = assistant.mllm
    mllm.prefix_cache.clear()
    mllm.vision_cache.clear()
    fresh = mllm.choice_logprobs([Turn("user", "Is it red?\n\nWhich tool?", [image])], ["caption", "answer"], reuse=False)
    assert mllm.choice_logprobs([Turn("user", "Is it red?\n\nWhich tool?", [image])], ["caption", "answer"]) == \
        pytest.approx(fresh, abs=1e-4)
    mllm.prefix_cache.clear()
    mllm.choice_logprobs([Turn("user", "Is it red?\n\nWhich tool?", [image])], ["caption", "answer"])
    options = GenerationOptions(max_new_tokens=8)
    answer = mllm.generate([Turn("user", "Is it red?", [image])], options)
    assert mllm.last_stats["images_encoded"] == 0 and mllm.last_stats["reused_tokens"] > 16
    assert answer == mllm.generate([Turn("user", "Is it red?", [image])], options, reuse=False)


@pytest.fixture(scope="module")
def vip_chat(tiny_config):
    from chat.mllm import MultimodalChat
    from chat.registry import ModelRegistry

    return MultimodalChat(ModelRegistry(tiny_config.model_copy(update={"chat_model": "vip_llava"})))


def test_vip_llava_chats_with_and_without_the_caches(vip_chat, image):
    """ViP-LLaVA takes its image features as one tensor (LLaVA as a list): the cached path must feed both."""
    options = GenerationOptions(max_new_tokens=8)
    first = [Turn("user", "What is in the red circle?", [image])]
    answer = vip_chat.generate(first, options)
    assert answer == vip_chat.generate(first, options, reuse=False)
    follow = first + [Turn("assistant", answer), Turn("user", "And its colour?")]
    assert vip_chat.generate(follow, options) == vip_chat.generate(follow, options, reuse=False)
    assert vip_chat.choice_logprobs(first, ["yes", "no"]) == pytest.approx(
        vip_chat.choice_logprobs(first, ["yes", "no"], reuse=False), abs=1e-4)


def test_a_branch_sharing_only_the_system_prompt_leaves_the_other_conversations_cache():
    """Two sessions share the system prompt: the second one's turn reuses those tokens from a copy, and the
    first session's follow-up still finds its whole conversation (image included) in the cache."""
    import torch
    from transformers import DynamicCache

    from chat.turn_cache import PrefixCache

    def kv(tokens):
        cache = DynamicCache()
        cache.update(torch.rand(1, 2, tokens, 4), torch.rand(1, 2, tokens, 4), layer_idx=0)
        return cache

    system = torch.arange(100)
    first = torch.cat([system, torch.full((50,), -7), torch.arange(1000, 1020)])  # system, image, question
    prefix = PrefixCache(min_tokens=8)
    prefix.put(first, kv(len(first)))
    other = torch.cat([system, torch.full((50,), -9), torch.arange(1000, 1020)])  # another image
    shared, keep = prefix.take(other)
    assert keep == len(system) and shared.get_seq_length() == keep
    follow_up = torch.cat([first, torch.arange(2000, 2010)])
    taken, keep = prefix.take(follow_up)
    assert keep == len(first) and taken.get_seq_length() == keep
    assert prefix.take(follow_up) == (None, 0)  # continuing a conversation still takes its entry


def test_prefix_cache_keeps_within_its_byte_allowance():
    import torch
    from transformers import DynamicCache

    from chat.turn_cache import PrefixCache, cache_bytes

    def kv(tokens):
        cache = DynamicCache()
        cache.update(torch.zeros(1, 2, tokens, 4), torch.zeros(1, 2, tokens, 4), layer_idx=0)
        return cache

    assert cache_bytes(kv(10)) == 2 * 2 * 10 * 4 * 4
    prefix = PrefixCache(slots=8, min_tokens=2, max_bytes=cache_bytes(kv(25)))
    for start in (100, 200, 300):
        prefix.put(torch.arange(start, start + 10), kv(10))
    assert prefix.bytes <= cache_bytes(kv(25)) and prefix.take(torch.arange(100, 112))[0] is None  # oldest left
    assert prefix.take(torch.arange(300, 312))[1] == 10
    prefix.put(torch.arange(0, 40), kv(40))  # larger than the whole allowance: not kept
    assert prefix.take(torch.arange(0, 40))[0] is None


def test_unloading_the_model_drops_its_caches(tiny_config, image):
    from chat.mllm import MultimodalChat
    from chat.registry import ModelRegistry

    registry = ModelRegistry(tiny_config)
    chat = MultimodalChat(registry)
    chat.generate([Turn("user", "What is it?", [image])], GenerationOptions(max_new_tokens=4))
    assert chat.prefix_cache.bytes > 0 and chat.vision_cache._data
    registry.unload(chat.name)
    assert chat.prefix_cache.bytes == 0 and not chat.vision_cache._data


def test_options_scored_in_one_batch_match_one_at_a_time(assistant, image):
    mllm = assistant.mllm
    options = ["caption", "vqa", "score", "classify", "mark", "som", "edit", "remove", "generate", "sketch", "answer"]
    turns = [Turn("user", "Which tool fits?", [image])]
    forwards = []
    hook = mllm.bundle.model.register_forward_pre_hook(lambda m, a, kw: forwards.append(kw["input_ids"].shape[0]),
                                                       with_kwargs=True)
    saved = mllm.batch_bytes
    try:
        mllm.batch_bytes = 0  # no room for a batch: one option at a time
        one_by_one = mllm.choice_logprobs(turns, options, reuse=False)
        sequential = len(forwards)
        forwards.clear()
        mllm.batch_bytes = 2**30
        batched = mllm.choice_logprobs(turns, options, reuse=False)
    finally:
        mllm.batch_bytes = saved
        hook.remove()
    assert batched == pytest.approx(one_by_one, abs=1e-5)
    assert len(forwards) == 2 < sequential  # the prompt, then every longer option at once
