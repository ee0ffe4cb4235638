"""Tokenizers trained locally on a small generated corpus: no hub, no downloads.

One corpus, four tokenizer flavours, each saved the way its real counterpart is:
Llama (LLaVA, ViP-LLaVA), CLIP (CLIP and the Stable Diffusion text encoder), BERT (BLIP) and
SentencePiece (SigLIP). Everything is deterministic: same corpus, same vocabulary, same ids.
"""

from __future__ import annotations

import json
import random
import tempfile
from functools import lru_cache
from pathlib import Path

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
SPECIALS_LLAMA = ["<unk>", "<s>", "</s>", "<pad>"]
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


def _train_bpe(vocab_size: int, specials: list[str], byte_fallback: bool, clip_style: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    if clip_style:
        model = models.BPE(unk_token=specials[0], end_of_word_suffix="</w>")
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials, end_of_word_suffix="</w>",
            show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
        text = [line.lower() for line in corpus()]
    else:
        model = models.BPE(unk_token=specials[0], byte_fallback=byte_fallback, fuse_unk=True)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials, show_progress=False, initial_alphabet=["▁"]
        )
        # split=True while training keeps merges inside words, like sentencepiece does
        pre = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        text = list(corpus())
    tok = Tokenizer(model)
    if clip_style:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(), pre]
        )
    else:
        tok.pre_tokenizer = pre
    tok.train_from_iterator(text, trainer)
    data = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in data["merges"]]
    return data["vocab"], merges


def llama_tokenizer(vocab_size: int = 1000):
    """A LlamaTokenizer (byte fallback, metaspace) with ``<s> </s> <unk> <pad>`` and ``<image>``."""
    from transformers import LlamaTokenizer

    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    vocab, merges = _train_bpe(vocab_size - 1, SPECIALS_LLAMA + byte_tokens, True, False)
    tok = LlamaTokenizer(
        vocab=vocab, merges=merges, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", add_bos_token=True, add_eos_token=False, legacy=False,
        model_max_length=2048, padding_side="left",
    )
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tok


def clip_tokenizer(vocab_size: int = 800, model_max_length: int = 77):
    """A CLIPTokenizer built from a locally trained byte-level vocabulary and merges."""
    from transformers import CLIPTokenizer

    specials = ["<|endoftext|>", "<|startoftext|>"]
    vocab, merges = _train_bpe(vocab_size, specials, False, True)
    from tokenizers import pre_tokenizers

    # like the real CLIP vocabulary, every byte exists alone and as a word ending
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        for piece in (ch, ch + "</w>"):
            vocab.setdefault(piece, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def bert_tokenizer(directory: Path):
    """A BertTokenizer over a word-piece vocabulary of whole corpus words plus characters."""
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
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    # BLIP's text decoder starts from [DEC] (bos) and its pad is [PAD]; vocab= (not vocab_file=) is read
    tok = BertTokenizer(vocab=str(path), do_lower_case=True, model_max_length=512)
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


def sentencepiece_model(vocab_size: int = 400) -> bytes:
    """A SentencePiece unigram model (SigLIP's ``spiece.model``) trained on the corpus."""
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "corpus.txt"
        text.write_text("\n".join(corpus()) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(text), model_prefix=str(Path(tmp) / "spiece"), vocab_size=vocab_size,
            model_type="unigram", character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
            num_threads=1, minloglevel=2, hard_vocab_limit=False, seed_sentencepiece_size=10000, shuffle_input_sentence=False,
        )
        return (Path(tmp) / "spiece.model").read_bytes()
