"""Constrained choice: the mean log-probability of each option continuing a prompt already in a KV cache.

The first token of every option is read from the prompt's last logits. The options' remaining tokens run on
top of the cache either all at once, as one batch over a broadcast (not copied) view of the cache, when the
batch's KV fits ``batch_bytes``; or one option at a time, cropping the cache back after each. On a CPU, and
above all with 4-bit weights (every forward dequantizes every layer), one batched forward costs about what one
option's forward does, so scoring eleven options costs two forwards instead of twelve.
"""

from __future__ import annotations


def _broadcast(cache, batch: int):
    """A new DynamicCache whose layers are ``batch``-wide views of ``cache``'s (no copy until it grows)."""
    from transformers import DynamicCache

    wide = DynamicCache()
    for index, layer in enumerate(cache.layers):
        shape = (batch, *layer.keys.shape[1:])
        wide.update(layer.keys.expand(shape), layer.values.expand(shape), layer_idx=index)
    return wide


def option_logprobs(model, cache, first, options: list, prompt_len: int, batch_bytes: int) -> list[float]:
    """Mean log-probability of each option (a 1-D tensor of token ids) after the prompt held in ``cache``.

    ``first`` holds the log-probabilities of the token after the prompt. ``cache`` is left holding the
    prompt alone."""
    import torch

    from chat.turn_cache import cache_bytes, cache_name

    device = first.device
    logps: list[list] = [[first[ids[0]]] for ids in options]
    longer = [i for i, ids in enumerate(options) if len(ids) > 1]
    width = max((len(options[i]) - 1 for i in longer), default=0)
    per_token = cache_bytes(cache) / max(cache.get_seq_length(), 1)
    batched = len(longer) > 1 and len(longer) * (prompt_len + width) * per_token <= batch_bytes
    groups = [longer] if batched else [[i] for i in longer]
    for group in groups:
        k = max(len(options[i]) - 1 for i in group)
        rest = torch.stack([torch.cat([options[i][:-1], options[i][-1:].repeat(k - len(options[i]) + 1)])
                            for i in group])  # padded at the end: causal attention keeps earlier logits exact
        past = _broadcast(cache, len(group)) if batched else cache
        out = model(input_ids=rest, **{cache_name(): past}, use_cache=True,
                    attention_mask=torch.ones(len(group), prompt_len + k, dtype=torch.long, device=device),
                    cache_position=torch.arange(prompt_len, prompt_len + k, device=device))
        logits = torch.log_softmax(out.logits.float(), dim=-1)
        for row, i in enumerate(group):
            ids = options[i]
            logps[i].extend(logits[row, : len(ids) - 1].gather(1, ids[1:].unsqueeze(1)).squeeze(1))
        if not batched:
            cache.crop(-k)  # back to the prompt alone
    return [float(torch.stack(values).mean()) for values in logps]
