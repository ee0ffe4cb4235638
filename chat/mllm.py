"""The local multimodal model (LLaVA-style): prompts in the model's trained format, streaming.

A conversation is a list of :class:`Turn`; each user turn carries the images it is about. The prompt is
rendered by a chat template: the format the checkpoint was fine-tuned with (``models.<name>.chat_template``;
``auto`` picks it by the checkpoint's family, see :mod:`chat.prompt_format`) or the processor's own
(``checkpoint``), so any llava-hf-compatible checkpoint works. Typed special tokens are encoded as text; an answer ends before a made-up next turn.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterator, Literal

from PIL import Image

from chat.choice import option_logprobs
from chat.config import GenerationConfig
from chat.errors import OutOfMemory, is_out_of_memory, out_of_memory_message


class GenerationOptions(GenerationConfig):
    """Validated per-request generation options (defaults come from the config)."""


@dataclass
class Turn:
    role: Literal["user", "assistant", "system"]
    text: str
    images: list[Image.Image] = field(default_factory=list)


def _torch():
    import torch

    return torch


def _cancel_criteria(*events: threading.Event):
    from transformers import StoppingCriteria

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return any(event.is_set() for event in events)

    return Cancelled()


def _leading_specials(tokenizer) -> list[int]:
    """The ids the tokenizer puts before a text (LLaVA's Llama: BOS)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return list(full[:start])
    return []


class MultimodalChat:
    """Chat with a LLaVA-style model held by the registry under ``name``."""

    def __init__(self, registry, name: str | None = None):
        from chat.turn_cache import PrefixCache, VisionCache

        self.registry = registry
        self.name = name or registry.config.chat_model
        cache = registry.config.cache
        self.prefix_cache = PrefixCache(cache.prefix_slots, max_bytes=int(cache.prefix_gb * 2**30))
        self.batch_bytes = int(cache.prefix_gb * 2**30)  # transient KV of the options scored in one batch
        self.vision_cache = VisionCache(cache.vision_entries)
        registry.on_unload(self.name, lambda _name: self.forget())  # its KV caches and features leave with it
        self.last_stats: dict[str, int] = {}
        self._stops: tuple = (None, ([], None))  # (processor and template, (their stop strings, criteria))
        self._vocabulary: tuple = (None, None)  # (the tokenizer, its chat.structured.Vocabulary)

    def forget(self) -> None:
        """Drop the work kept across turns (the model was offloaded or unloaded, or memory is short)."""
        self.prefix_cache.clear()
        self.vision_cache.clear()

    # -- prompt ----------------------------------------------------------------------------
    @property
    def bundle(self):
        return self.registry.get(self.name)

    @property
    def spec(self):
        return self.registry.config.model(self.name)

    def training(self):
        """How the checkpoint was fine-tuned (:data:`chat.prompt_format.TRAININGS`); None for another family. Read
        from its config (:meth:`chat.registry.ModelRegistry.model_config`): nothing is loaded or moved to know it."""
        from chat.prompt_format import training

        return training(self.registry.model_config(self.name))

    def template(self) -> str | None:
        """The chat template prompts are rendered with (``models.<name>.chat_template``; ``auto``: the checkpoint
        family's trained format; None: the checkpoint's own)."""
        from chat.prompt_format import chat_template, resolved_template

        bundle = self.bundle
        name = resolved_template(self.spec.chat_template, bundle.model.config)
        return chat_template(name, getattr(bundle.processor, "image_token", "<image>"))

    def _conversation(self, turns: list[Turn], answer_start: str = "") -> tuple[list[dict], list[Image.Image]]:
        """The turns as chat-template messages (role markers typed in any text neutralised; the stored text is
        unchanged) and the images in the order they appear; ``answer_start`` begins the assistant's answer."""
        from chat.prompt_format import neutral_text

        conversation, images = [], []
        for turn in turns:
            parts = [{"type": "image"} for _ in turn.images]
            parts.append({"type": "text", "text": neutral_text(turn.text)})
            conversation.append({"role": turn.role, "content": parts})
            images.extend(im.convert("RGB") for im in turn.images)
        if answer_start:
            conversation.append({"role": "assistant", "content": [{"type": "text", "text": answer_start}]})
        return conversation, images

    @staticmethod
    def _ending(answer_start: str) -> dict:
        """How the prompt ends: the assistant's turn opened, or continued after ``answer_start``."""
        if answer_start:
            return {"add_generation_prompt": False, "continue_final_message": True}
        return {"add_generation_prompt": True}

    def render(self, turns: list[Turn], add_generation_prompt: bool = True,
               answer_start: str = "") -> tuple[str, list[Image.Image]]:
        """The prompt text from the chat template (BOS is added as a token id), and the images in the order they
        appear in it. Special tokens typed in a message show here as typed; :meth:`inputs` encodes them as text."""
        conversation, images = self._conversation(turns, answer_start)
        ending = self._ending(answer_start) if add_generation_prompt else {"add_generation_prompt": False}
        prompt = self.bundle.processor.apply_chat_template(
            conversation, chat_template=self.template(), tokenize=False, **ending)
        return prompt, images

    def stop_strings(self) -> list[str]:
        """What a made-up next turn of this chat template starts with (see :func:`chat.prompt_format.stop_strings`)."""
        return list(self._stop_criteria()[0])

    def _stop_criteria(self):
        """(stop strings, transformers' StopStringCriteria for them or None), made once per processor and template:
        the criteria reads the whole vocabulary when it is made."""
        from transformers import StopStringCriteria

        from chat.prompt_format import stop_strings

        processor, template = self.bundle.processor, self.template()
        key = (id(processor), template)
        if self._stops[0] != key:
            render = lambda conversation, gen: processor.apply_chat_template(  # noqa: E731
                conversation, chat_template=template, add_generation_prompt=gen, tokenize=False)
            stops = stop_strings(render, processor.tokenizer.eos_token)
            criteria = StopStringCriteria(processor.tokenizer, stops) if stops else None
            self._stops = (key, (stops, criteria))
        return self._stops[1]

    def vocabulary(self):
        """The tokenizer as the grammar engine sees it (:class:`chat.structured.Vocabulary`), made once per
        tokenizer: building it reads the whole vocabulary."""
        from chat.structured import Vocabulary

        bundle = self.bundle
        tokenizer = bundle.processor.tokenizer
        if self._vocabulary[0] is not tokenizer:
            text = getattr(bundle.model.config, "text_config", bundle.model.config)
            self._vocabulary = (tokenizer, Vocabulary(tokenizer, getattr(text, "vocab_size", None)))
        return self._vocabulary[1]

    def inputs(self, turns: list[Turn], answer_start: str = ""):
        """Token ids (the rendered prompt; special tokens typed in a message are encoded as text, by the
        tokenizer's ``sanitize_control_tokens``), attention mask and pixel values, on the model's device.
        ``answer_start`` is the beginning of the answer, written by the caller (the model continues it)."""
        from tools.aspect import square_images

        torch = _torch()
        conversation, images = self._conversation(turns, answer_start)
        bundle = self.bundle
        processor = bundle.processor
        # LLaVA-1.5 / ViP-LLaVA were trained on images padded to square; their processor would centre-crop
        images = square_images(images, processor, getattr(bundle, "image_aspect_ratio", "auto"))
        batch = processor.apply_chat_template(
            conversation, chat_template=self.template(), tokenize=True, **self._ending(answer_start),
            return_dict=True, return_tensors="pt", sanitize_control_tokens=True,
            processor_kwargs={"images": images or None, "add_special_tokens": False},
        )
        # sanitize_control_tokens encodes without the tokenizer's own specials; add them as the tokenizer would
        start = torch.tensor([_leading_specials(processor.tokenizer)], dtype=batch["input_ids"].dtype)
        batch["input_ids"] = torch.cat([start, batch["input_ids"]], dim=1)
        if "attention_mask" in batch:
            batch["attention_mask"] = torch.cat([torch.ones_like(start), batch["attention_mask"]], dim=1)
        device = bundle.model.device
        dtype = bundle.model.dtype
        out = {}
        for key, value in batch.items():
            if key == "pixel_values":
                value = value.to(device=device, dtype=self._vision_dtype(dtype))
            elif hasattr(value, "to"):
                value = value.to(device)
            out[key] = value
        return out

    def image_token_counts(self, sizes) -> list[int]:
        """Placeholder tokens the checkpoint's processor gives each image of these (height, width) sizes, in order:
        the same for every image with LLaVA-1.5 (576), one count per size and aspect ratio with LLaVA-NeXT."""
        sizes = [[int(h), int(w)] for h, w in sizes]
        return list(self.bundle.processor._get_num_multimodal_tokens(image_sizes=sizes)["num_image_tokens"])

    def _vision_dtype(self, default):
        try:
            return next(self.bundle.model.model.vision_tower.parameters()).dtype
        except (AttributeError, StopIteration):
            return default

    # -- generation ------------------------------------------------------------------------
    def _generate_kwargs(self, options: GenerationOptions) -> dict:
        kwargs = {"max_new_tokens": options.max_new_tokens}
        if options.temperature > 0:
            kwargs.update(do_sample=True, temperature=options.temperature, top_p=options.top_p)
        else:
            kwargs.update(do_sample=False)
        tokenizer = self.bundle.processor.tokenizer
        kwargs["pad_token_id"] = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return kwargs

    def stream(
        self,
        turns: list[Turn],
        options: GenerationOptions | None = None,
        cancel: threading.Event | None = None,
        reuse: bool = True,
        *,
        constraint=None,
        answer_start: str = "",
        stats: dict | None = None,
    ) -> Iterator[str]:
        """Yield the answer piece by piece. Setting ``cancel`` (or closing the iterator) stops generation.

        With ``reuse``, the KV cache of an earlier turn sharing this prompt's prefix is continued and image
        features come from the vision cache, so a follow-up prefills only its new tokens. If the device runs out
        of memory before the first piece, the caches and every other model are freed and it is tried once more.

        ``constraint`` (a :class:`chat.structured.JsonConstraint`) makes the answer a JSON document matching its
        schema: its forced start is prefilled with the prompt (and yielded first) and generation ends when the
        document is complete. ``answer_start`` is text the answer begins with, prefilled and not yielded. ``stats``
        receives the turn's counts: ``prompt_tokens`` (image tokens included), ``reused_tokens``,
        ``images_encoded``, ``output_tokens``, and with a constraint ``complete`` and ``mask_seconds``.
        """
        cancel = cancel or threading.Event()
        started = False
        try:
            for piece in self._stream_once(turns, options, cancel, reuse, constraint, answer_start, stats):
                started = True
                yield piece
            return
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
            if started or not is_out_of_memory(exc):
                raise
        self.forget()
        freed = self.registry.free_memory(keep=self.name)
        try:
            yield from self._stream_once(turns, options, cancel, False, constraint, answer_start, stats)
        except Exception as exc:  # noqa: BLE001
            if is_out_of_memory(exc):
                raise OutOfMemory(out_of_memory_message("the answer", freed)) from exc
            raise

    def _stream_once(self, turns: list[Turn], options: GenerationOptions | None, cancel: threading.Event,
                     reuse: bool, constraint=None, answer_start: str = "",
                     stats: dict | None = None) -> Iterator[str]:
        from transformers import LogitsProcessorList, StoppingCriteriaList, TextIteratorStreamer

        from chat.prompt_format import StopText
        from chat.turn_cache import cache_name

        options = options or GenerationOptions(**self.registry.config.generation.model_dump())
        stop = threading.Event()  # ends the worker when the consumer stops early, without touching ``cancel``
        forced, mask = "", None
        if constraint is not None:
            vocabulary = self.vocabulary()
            forced = constraint.forced_start(vocabulary)
            mask = constraint.mask(vocabulary, options.max_new_tokens, forced)
        kwargs, keys, _, counts = self._prepared(self.inputs(turns, answer_start + forced), reuse)
        tokenizer = self.bundle.processor.tokenizer
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        stops, on_stop = self._stop_criteria()  # generation ends on a made-up next turn; the text is cut before it
        if mask is not None:  # the grammar decides where a document ends, and role markers in it are text
            stops, on_stop = [], None
            kwargs["logits_processor"] = LogitsProcessorList([mask])
        criteria = [_cancel_criteria(cancel, stop)] + ([on_stop] if on_stop is not None else [])
        kwargs.update(streamer=streamer, stopping_criteria=StoppingCriteriaList(criteria))
        kwargs.update(self._generate_kwargs(options), return_dict_in_generate=True)
        cut = StopText(stops)
        errors: list[BaseException] = []

        def run():
            torch = _torch()
            try:
                if options.seed is not None:
                    torch.manual_seed(options.seed)
                with torch.inference_mode():
                    out = self.bundle.model.generate(**kwargs)
                answer = out.sequences[0][len(keys):].to("cpu", torch.int64)
                counts["output_tokens"] = len(answer)
                if reuse:  # the prompt's keys, then the answer's token ids
                    self.prefix_cache.put(torch.cat([keys, answer]), getattr(out, cache_name()))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer thread
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="mmchat-generate", daemon=True)
        worker.start()
        try:
            if forced:
                yield forced
            for piece in streamer:
                shown = cut.feed(piece)
                if shown:
                    yield shown
                if cancel.is_set() or cut.stopped:
                    break
            else:
                rest = cut.flush()
                if rest:
                    yield rest
        finally:
            stop.set()
            worker.join()
            if stats is not None:
                stats.update(counts)
                if mask is not None:
                    stats.update(complete=mask.complete, mask_seconds=mask.mask_seconds)
        if errors:
            raise errors[0]

    def _prepared(self, inputs: dict, reuse: bool) -> tuple[dict, object, int, dict]:
        """Generation inputs continuing a cached prefix and using cached image features when allowed, the
        prompt's keys (token ids with images keyed by content) under which its KV cache is kept afterwards,
        how many prompt tokens the cache already holds, and the counts (also kept as ``last_stats``)."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        from chat.turn_cache import cache_name, image_keys, images_within, sequence_keys

        model = self.bundle.model
        ids = inputs["input_ids"][0]
        image_token = getattr(model.config, "image_token_id", None)
        pixel_values = inputs.get("pixel_values")
        sizes = inputs.get("image_sizes")  # anyres (LLaVA-NeXT): each image's (height, width)
        keyed, counts = [], []
        if pixel_values is not None:
            keyed = image_keys(model.config, pixel_values, sizes)
            counts = self.image_token_counts(sizes if sizes is not None else [p.shape[-2:] for p in pixel_values])
        keys = sequence_keys(ids, image_token, keyed, counts)
        cache, reused = self.prefix_cache.take(keys) if reuse else (None, 0)
        kwargs = {k: v for k, v in inputs.items() if k not in ("pixel_values", "image_sizes")}
        encoded = 0
        if pixel_values is not None:
            in_prefix = images_within(counts, int((ids[:reused] == image_token).sum()))
            remaining = pixel_values[in_prefix:]
            remaining_sizes = None if sizes is None else sizes[in_prefix:]
            if len(remaining) and reuse:
                before = self.vision_cache.encodes
                features = self.vision_cache.features(model, remaining, keyed[in_prefix:], remaining_sizes)
                encoded = self.vision_cache.encodes - before
                kwargs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=features)}
            elif len(remaining):
                kwargs["pixel_values"] = remaining
                if remaining_sizes is not None:
                    kwargs["image_sizes"] = remaining_sizes
                encoded = len(remaining)
        if cache is not None:
            kwargs[cache_name()] = cache
        self.last_stats = {"prompt_tokens": len(ids), "reused_tokens": reused, "images_encoded": encoded}
        return kwargs, keys, reused, dict(self.last_stats)

    def generate(self, turns: list[Turn], options: GenerationOptions | None = None, reuse: bool = True) -> str:
        return "".join(self.stream(turns, options, reuse=reuse)).strip()

    def choice_logprobs(self, turns: list[Turn], options: list[str], reuse: bool = True,
                        stats: dict | None = None) -> list[float]:
        """Mean log-probability of each option as the assistant's answer: a constrained choice.

        The prompt (image included) is prefilled once, continuing a cached conversation prefix when ``reuse``
        allows (so a choice made before answering costs only the new tokens, and the answer that follows
        reuses the choice's prefill); each option then runs only its own few tokens on top of that KV cache,
        which is cropped back to the prompt afterwards, or all options in one batch (see :mod:`chat.choice`).
        """
        from chat.turn_cache import cache_name

        torch = _torch()
        bundle = self.bundle
        model = bundle.model
        base = self.inputs(turns)
        kwargs, keys, start, counts = self._prepared(base, reuse)
        if stats is not None:
            stats.update(counts)
        prompt_len = base["input_ids"].shape[1]
        device = base["input_ids"].device
        tokenizer = bundle.processor.tokenizer
        kwargs.update(input_ids=base["input_ids"][:, start:], use_cache=True,
                      cache_position=torch.arange(start, prompt_len, device=device))
        option_ids = [tokenizer(o, add_special_tokens=False, return_tensors="pt")["input_ids"][0].to(device)
                      for o in options]
        with torch.inference_mode():
            out = model(**kwargs)
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            cache = getattr(out, cache_name())
            scores = option_logprobs(model, cache, first, option_ids, prompt_len, self.batch_bytes)
        if reuse:
            self.prefix_cache.put(keys, cache)
        return scores
