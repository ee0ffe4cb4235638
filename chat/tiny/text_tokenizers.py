"""Tokenizers trained locally on a small generated corpus: no hub, no downloads.

One corpus, four tokenizer flavours, each saved the way its real counterpart is:
Llama (LLaVA, ViP-LLaVA), CLIP (CLIP and the Stable Diffusion text encoder), BERT (BLIP) and
SentencePiece (SigLIP). Everything is deterministic: same corpus, same vocabulary, same ids.

Training uses the ``tokenizers`` BPE trainer without an end-of-word suffix and with word starts
(or ends) marked by hand: the trainer then orders its alphabet and breaks ties deterministically (with a
suffix, or with the unigram trainer, ids change from one process to the next).
"""

from __future__ import annotations

import json
import random
from functools import lru_cache

COLORS = "red green blue yellow black white orange purple pink brown gray grey gold silver".split()
OBJECTS = (
    "cat dog car bus bike tree house person man woman child bird horse cow sheep boat plane train "
    "apple banana pizza cake cup bottle chair table sofa bed tv laptop phone book clock vase flower "
    "sky cloud sun moon road street grass water sea mountain snow hat shirt shoe bag ball kite box "
    "sign light window door wall floor room kitchen food plate fork knife spoon bowl object animal"
).split()
WORDS = (
    "the a an is are was were be this that these those it its of in on at to from with and or not "
    "what which who where when why how many much there here left right top bottom middle center "
    "near next behind front above below inside outside big small large little tall short old new "
    "photo picture image painting drawing sketch scene view close up of style make turn into add "
    "remove replace change color background object region circle arrow box mark point number "
    "yes no maybe one two three four five six seven eight nine ten zero first second third "
    "i you he she we they my your his her our their do does did can could would should will "
    "see look show tell describe answer question please thank thanks hello good bad nice very "
    "sitting standing walking running playing holding wearing eating looking riding lying "
    "human assistant user system chat between curious artificial intelligence gives helpful "
    "detailed polite answers questions"
).split()
CAPITALISED = "USER ASSISTANT Human Assistant A The What Is Yes No It This There How Which".split()
PUNCTUATION = list(".,?!:;'\"()-#/*+=%&@[]{}<>_|~`$^\\")
JAPANESE = list("これは何ですか猫犬赤青緑黄色白黒写真画像はいいいえ一二三")
IMAGE_TOKEN = "<image>"


@lru_cache(maxsize=1)
def corpus() -> tuple[str, ...]:
    """A few hundred deterministic lines covering the words the tiny models will ever see."""
    rng = random.Random(1234)
    vocab = WORDS + COLORS + OBJECTS
    lines = [" ".join(vocab[i : i + 12]) for i in range(0, len(vocab), 12)]
    for _ in range(300):
        line = " ".join(rng.choice(vocab) for _ in range(rng.randint(4, 14)))
        lines.append(rng.choice(CAPITALISED) + " " + line + rng.choice(PUNCTUATION[:4]))
    lines += [f"a {c} {o}" for c in COLORS for o in OBJECTS[:12]]
    lines += [" ".join(CAPITALISED), "".join(PUNCTUATION), " ".join("0123456789"), "".join(JAPANESE)]
    lines += [f"{i} {i * 7} {i * 13}" for i in range(40)]
    lines.append("USER: what is this? ASSISTANT: a cat. ###Human: hello ###Assistant: yes")
    return tuple(lines)


WORD_MARK = "\u2581"  # "▁": starts a word (Llama, SigLIP)
END_OF_WORD = 0xF0000  # CLIP: private-use plane offset of word-final characters


def _train_bpe(words: list[str], vocab_size: int, specials: list[str]):
    """Deterministic BPE over whitespace-separated, already marked words: (vocab, merges)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=specials[0]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.train_from_iterator([" ".join(words)], trainer)
    data = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in data["merges"]]
    return data["vocab"], merges


def _metaspace_words() -> list[str]:
    return [WORD_MARK + w for line in corpus() for w in line.split()]


def llama_tokenizer(vocab_size: int = 1000):
    """llava-1.5's LlamaTokenizer in small: ``<unk> <s> </s>`` at ids 0-2 and the 256 byte-fallback pieces
    at 3-258 like Llama's SentencePiece vocabulary, merges trained here up to ``vocab_size``, then ``<image>``
    and ``<pad>`` added after the vocabulary (32000 and 32001 in the real one; ``vocab_size`` and one more
    here). Settings (bos added, no eos, left padding, ``legacy=False``, ...) come from the hub's
    ``tokenizer_config.json`` (``chat/tiny/hub``)."""
    from transformers import LlamaTokenizer

    from . import fixtures

    real = fixtures.load(fixtures.REPOS["llava"], "tokenizer_config.json")
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    specials = [real["unk_token"], real["bos_token"], real["eos_token"]]
    vocab, merges = _train_bpe(_metaspace_words(), vocab_size, specials + byte_tokens)
    settings = ("add_bos_token", "add_eos_token", "legacy", "padding_side", "clean_up_tokenization_spaces",
                "model_max_length", "unk_token", "bos_token", "eos_token")
    tok = LlamaTokenizer(vocab=vocab, merges=merges, extra_special_tokens=real["extra_special_tokens"],
                         **{key: real[key] for key in settings})
    tok.add_special_tokens({"pad_token": real["pad_token"]})
    return tok


def mistral_tokenizer(vocab_size: int = 1000):
    """Mistral-7B-Instruct-v0.2's layout as llava-hf ships it with LLaVA-NeXT (llava-v1.6-mistral-7b-hf):
    ``<unk> <s> </s>`` (ids 0 1 2), byte fallback, metaspace, then the added ``<image>`` and ``<pad>`` (32000 and
    32001 in the real vocabulary: the image token just after the base vocabulary, the pad token after it)."""
    from transformers import LlamaTokenizer

    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    vocab, merges = _train_bpe(_metaspace_words(), vocab_size - 2, ["<unk>", "<s>", "</s>"] + byte_tokens)
    tok = LlamaTokenizer(
        vocab=vocab, merges=merges, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        add_bos_token=True, add_eos_token=False, legacy=False, model_max_length=32768, padding_side="left",
    )
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tok.add_special_tokens({"pad_token": "<pad>"})
    return tok


def clip_tokenizer(vocab_size: int = 800, model_max_length: int = 77):
    """A CLIPTokenizer laid out like the real vocabulary: bytes, bytes+``</w>``, merges, specials."""
    from tokenizers import Regex, pre_tokenizers
    from transformers import CLIPTokenizer

    split = pre_tokenizers.Sequence([
        pre_tokenizers.Split(
            Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
            behavior="removed", invert=True,
        ),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    # a word's last character is replaced by a private-use twin, CLIP's "x</w>" symbol in disguise
    words = [
        piece[:-1] + chr(END_OF_WORD + ord(piece[-1]))
        for line in corpus() for piece, _ in split.pre_tokenize_str(line.lower())
    ]
    _, trained = _train_bpe(words, vocab_size, ["<|endoftext|>"])

    def clip_piece(piece: str) -> str:
        last = ord(piece[-1])
        return piece[:-1] + chr(last - END_OF_WORD) + "</w>" if last >= END_OF_WORD else piece

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=_byte_order)
    tokens = alphabet + [ch + "</w>" for ch in alphabet]
    merges = [(clip_piece(left), clip_piece(right)) for left, right in trained]
    tokens += [left + right for left, right in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def _byte_order(ch: str) -> int:
    """Position of a byte-level character in GPT-2's bytes_to_unicode table (the real CLIP order)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    code = ord(ch)
    return printable.index(code) if code in printable else len(printable) + code


def bert_tokenizer():
    """A BertTokenizer over a word-piece vocabulary of whole corpus words plus characters.

    BLIP's text decoder starts from ``[DEC]`` (bos) and stops at ``[SEP]``; pad is ``[PAD]``.
    """
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words, chars = {}, {}
    for line in corpus():
        for word in line.lower().replace("###", " ").split():
            for piece in _split_punct(word):
                words.setdefault(piece, None)
                for ch in piece:
                    chars.setdefault(ch, None)
    tokens = specials + list(chars) + ["##" + c for c in chars] + [w for w in words if w not in chars]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    tok = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=512)
    tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    return tok


def _split_punct(word: str) -> list[str]:
    out, cur = [], ""
    for ch in word:
        if ch in PUNCTUATION:
            if cur:
                out.append(cur)
            out.append(ch)
            cur = ""
        else:
            cur += ch
    return out + ([cur] if cur else [])


def siglip_tokenizer(vocab_size: int = 400):
    """A SiglipTokenizer built the way transformers' ``convert_siglip_to_hf.py`` builds the real one: a
    SentencePiece model (unigram, T5 layout: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2; trained here on the corpus),
    ``model_input_names=["input_ids"]`` (no attention mask: SigLIP was trained without one) and
    ``model_max_length`` 64, both read from the hub's ``tokenizer_config.json``. Needs sentencepiece and
    protobuf, like the real checkpoint.
    """
    import io
    import tempfile
    from pathlib import Path

    import sentencepiece as spm
    from transformers import SiglipTokenizer

    from . import fixtures

    real = fixtures.load(fixtures.REPOS["siglip"], "tokenizer_config.json")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([line.lower() for line in corpus()]), model_writer=model,
        vocab_size=vocab_size, hard_vocab_limit=False, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1, shuffle_input_sentence=False,
        character_coverage=1.0, normalization_rule_name="identity", minloglevel=2,
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spiece.model"
        path.write_bytes(model.getvalue())
        return SiglipTokenizer(
            vocab_file=str(path), model_input_names=real["model_input_names"],
            model_max_length=real["model_max_length"], do_lower_case=real["do_lower_case"],
            eos_token=real["eos_token"], pad_token=real["pad_token"], unk_token=real["unk_token"],
        )
