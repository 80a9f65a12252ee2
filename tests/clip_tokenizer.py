"""CLIP's BPE tokenizer, to count prompt tokens exactly as PhotoMaker's text encoder will.

Adapted from OpenAI CLIP's `simple_tokenizer.py` (MIT licence). The vocabulary file is read from
the `open-clip-torch` wheel, which `make setup` downloads without its dependencies (no torch).
"""

from __future__ import annotations

import gzip
import html
import io
import zipfile
from functools import lru_cache
from pathlib import Path

import regex

ROOT = Path(__file__).resolve().parents[1]
WHEEL_DIR = ROOT / ".venv" / "clip"
VOCAB_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
CONTEXT_LENGTH = 77  # including the start and end tokens


def vocab_bytes() -> bytes | None:
    for wheel in sorted(WHEEL_DIR.glob("open_clip_torch-*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(VOCAB_MEMBER)
    return None


def _bytes_to_unicode() -> dict[int, str]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, [chr(c) for c in codes], strict=True))


class ClipTokenizer:
    def __init__(self, gzipped_vocab: bytes) -> None:
        self.byte_encoder = _bytes_to_unicode()
        merges_text = gzip.GzipFile(fileobj=io.BytesIO(gzipped_vocab)).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in merges_text[1 : 49152 - 256 - 2 + 1]]
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.ranks = {merge: i for i, merge in enumerate(merges)}
        self.pattern = regex.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    def _bpe(self, token: str) -> list[str]:
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def encode(self, text: str) -> list[int]:
        text = " ".join(html.unescape(html.unescape(text)).split()).strip().lower()
        ids: list[int] = []
        for token in self.pattern.findall(text):
            encoded = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids += [self.encoder[piece] for piece in self._bpe(encoded)]
        return ids

    def count_with_specials(self, text: str) -> int:
        return len(self.encode(text)) + 2


@lru_cache(maxsize=1)
def tokenizer() -> ClipTokenizer | None:
    data = vocab_bytes()
    return ClipTokenizer(data) if data else None
