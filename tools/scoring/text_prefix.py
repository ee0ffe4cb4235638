"""CLIP text embeddings that reuse the prompt template's prefix.

CLIP's text encoder is causal: a token's hidden states depend only on the tokens before it. The keys and values
of ``<bos> a photo of a`` are therefore the same in every prompt of the template ``"a photo of a {}."``: they are
kept in the :class:`~tools.scoring.cache.EmbeddingCache` from the first pass that ran them (the whole prompts, in
one pass), and afterwards each new label runs only its own tokens (``red cat . <eos>``) through the layers,
attending to them. The embeddings are those of transformers' ``get_text_features`` on the whole prompt, to float
rounding (the tests compare the two).

The layers are run here with the model's own modules (layer norms, projections, MLP); only the attention over
``prefix + own tokens`` is written out (``scaled_dot_product_attention`` with the causal mask offset by the
prefix). Models whose text encoder is not CLIP's causal one (SigLIP's is bidirectional) never come here.
"""

from __future__ import annotations

from typing import Any, Sequence

from tools.scoring.cache import EmbeddingCache


def _torch():
    import torch

    return torch


def reuses_prefix(bundle) -> bool:
    """True for a CLIP model (causal text encoder) whose tokenizer starts prompts with BOS and pads on the right."""
    model = bundle.model
    text = getattr(model, "text_model", None)
    tokenizer = getattr(bundle.processor, "tokenizer", None)
    if getattr(getattr(model, "config", None), "model_type", None) != "clip" or tokenizer is None:
        return False
    if not all(hasattr(text, name) for name in ("embeddings", "encoder", "final_layer_norm", "eos_token_id")):
        return False
    layer = next(iter(getattr(text.encoder, "layers", [])), None)  # the parts _layer uses, as transformers names them
    attn = getattr(layer, "self_attn", None)
    return (
        all(hasattr(layer, name) for name in ("layer_norm1", "layer_norm2", "mlp"))
        and all(hasattr(attn, name) for name in ("q_proj", "k_proj", "v_proj", "out_proj", "num_heads", "head_dim",
                                                 "scale"))
        and hasattr(model, "text_projection")
        and getattr(tokenizer, "padding_side", "right") == "right"
    )


def _layer(layer, hidden, mask, past=None, keep: list | None = None, only=None):
    """One CLIP encoder layer (pre-norm attention then MLP) over ``hidden`` [b, s, d], attending to the ``past``
    keys and values [b, heads, p, head_dim] before it under ``mask`` (additive, [s, p+s] or [b, 1, 1, p+s]);
    appends this layer's own keys and values to ``keep``. With ``only`` (row indices, positions), just one position
    per row is computed: [b, 1, d]."""
    torch = _torch()
    attn = layer.self_attn
    x = layer.layer_norm1(hidden)
    b, s, d = x.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    k = attn.k_proj(x).view(b, s, heads, head_dim).transpose(1, 2)
    v = attn.v_proj(x).view(b, s, heads, head_dim).transpose(1, 2)
    if keep is not None:
        keep.append((k, v))
    if past is not None:
        k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
    if only is not None:  # the queries, residual and MLP of one position per row
        x, hidden = x[only].unsqueeze(1), hidden[only].unsqueeze(1)
    q = attn.q_proj(x).view(b, -1, heads, head_dim).transpose(1, 2)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
    hidden = hidden + attn.out_proj(out.transpose(1, 2).reshape(b, -1, d))
    return hidden + layer.mlp(layer.layer_norm2(hidden))


def text_features(model, ids, states: Sequence = (), keep: list | None = None) -> Any:
    """Projected text features [b, dim] of prompts whose first ``p`` tokens are the prefix of ``states`` (per layer,
    keys and values [1, heads, p, head_dim]; none: ``ids`` are whole prompts) and whose other tokens are ``ids``
    [b, s] (right-padded): what ``get_text_features`` gives for the whole prompts. Each layer's keys and values of
    ``ids`` are appended to ``keep``."""
    torch = _torch()
    text = model.text_model
    b, s = ids.shape
    p = states[0][0].shape[2] if states else 0
    positions = torch.arange(p, p + s, device=ids.device).unsqueeze(0)
    if text.eos_token_id == 2:  # CLIP configs from before transformers#24773: EOS is the largest id (as there)
        eos = ids.to(torch.int).argmax(dim=-1)
    else:  # the first EOS (the pad token may be EOS too)
        eos = (ids == text.eos_token_id).int().argmax(dim=-1)
    hidden = text.embeddings(input_ids=ids, position_ids=positions)
    # token i sees the prefix and the tokens up to itself: one additive mask for every layer, built once
    allowed = torch.ones(s, p + s, dtype=torch.bool, device=ids.device).tril(p)
    mask = torch.zeros(s, p + s, dtype=hidden.dtype, device=ids.device).masked_fill(~allowed, float("-inf"))
    only = (torch.arange(b, device=ids.device), eos)
    last = len(text.encoder.layers) - 1
    for n, layer in enumerate(text.encoder.layers):  # the last layer computes only the pooled (EOS) position
        past = (states[n][0].expand(b, -1, -1, -1), states[n][1].expand(b, -1, -1, -1)) if states else None
        hidden = _layer(layer, hidden, mask[eos][:, None, None] if n == last else mask, past, keep,
                        only if n == last else None)
    return model.text_projection(text.final_layer_norm(hidden[:, 0]))


def _prefix_ids(tokenizer, prefix: str) -> list[int]:
    """The template's text before ``{}`` as token ids: BOS and its words, without the EOS the tokenizer appends."""
    ids = list(tokenizer(prefix)["input_ids"])
    if ids and ids[-1] == tokenizer.eos_token_id:
        ids = ids[:-1]
    return ids


def encode_with_prefixes(bundle, mid: str, prompts: Sequence[str], prefixes: Sequence[str], cache: EmbeddingCache,
                         batch: int = 16):
    """Normalised float32 text embeddings [n, d] on the CPU of ``prompts``, each starting with its template text
    ``prefixes[i]``; the prefix's keys and values come from ``cache`` (computed once per model and prefix)."""
    from tools.scoring.encoders import normalise

    torch = _torch()
    model, tokenizer = bundle.model, bundle.processor.tokenizer
    device = next(model.parameters()).device
    out: list = [None] * len(prompts)
    groups: dict[str, list[int]] = {}
    for i, prefix in enumerate(prefixes):
        groups.setdefault(prefix, []).append(i)
    with torch.inference_mode():
        for prefix, members in groups.items():
            wanted = _prefix_ids(tokenizer, prefix)
            for start in range(0, len(members), batch):
                chunk = members[start : start + batch]
                tokens = tokenizer([prompts[i] for i in chunk], padding=True, truncation=True, return_tensors="pt")
                ids, shortest = tokens["input_ids"].to(device), int(tokens["attention_mask"].sum(dim=1).min())
                # the tokens every prompt of the chunk shares with the template's prefix (at least one own token)
                p = 0
                while p < len(wanted) and p + 1 < shortest and bool((ids[:, p] == wanted[p]).all()):
                    p += 1
                whole: list = []

                def run_whole(p=p, ids=ids, whole=whole):  # a miss: one pass over the whole prompts keeps the prefix
                    keep: list = []
                    whole.append(text_features(model, ids, keep=keep))
                    return [(k[:1, :, :p].clone(), v[:1, :, :p].clone()) for k, v in keep]

                states = cache.prefix((mid, tuple(wanted[:p])), run_whole) if p else []
                features = whole[0] if whole else text_features(model, ids[:, p:], states)
                for i, row in zip(chunk, normalise(features.float()).cpu()):
                    out[i] = row
    return torch.stack(out)
