"""Writes tiny random-weight llama models as GGUF files, so real inference servers run here.

Real servers (llama.cpp's OpenAI-compatible server, Ollama) need a model, and nothing may be
downloaded from a model hub. A llama with 2 layers, 64 dimensions and a 512-token vocabulary is
0.6 MB, loads in milliseconds and generates (random) tokens on any CPU. The weights come from a
fixed seed, so every run writes the same bytes.

The vocabulary is SentencePiece-style: three control tokens, the 256 byte tokens (``<0x00>`` …,
what llama.cpp falls back to for text no piece covers) and made-up words. Every token string is
unique (llama.cpp aborts on a duplicate). The output rows of control and byte tokens are zero,
so sampling picks the words: answers read as random words, not bytes.

Two files: ``tiny-chat.gguf`` (a causal language model) and ``tiny-embed.gguf`` (the same
weights with mean pooling, which llama.cpp needs to return one vector per input).

    python hack/tiny_models.py OUT_DIR      # prints the paths it wrote
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import gguf
import numpy as np

LAYERS = 2
DIMS = 64
HEADS = 4
KV_HEADS = 2
FEED_FORWARD = 128
VOCAB = 512
CONTEXT = 2048
SEED = 15
CHAT = "tiny-chat.gguf"
EMBED = "tiny-embed.gguf"
# ChatML, as both llama.cpp's server and Ollama read it from the file.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CONTROL = ("<unk>", "<s>", "</s>")
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u")
_TOKEN_NORMAL, _TOKEN_UNKNOWN, _TOKEN_CONTROL, _TOKEN_BYTE = 1, 2, 3, 6


def vocabulary() -> list[str]:
    """Control tokens, byte tokens, then made-up words (each unique, with SentencePiece's ▁)."""
    tokens = list(_CONTROL) + [f"<0x{b:02X}>" for b in range(256)]
    syllables = ["".join(p) for p in itertools.product(_ONSETS, _VOWELS)]
    words = ("".join(p) for p in itertools.product(syllables, repeat=2))
    tokens += ["\u2581" + w for w in itertools.islice(words, VOCAB - len(tokens))]
    if len(set(tokens)) != VOCAB:
        raise AssertionError("the vocabulary must hold VOCAB unique tokens")
    return tokens


def _token_types() -> list[int]:
    kinds = [_TOKEN_UNKNOWN, _TOKEN_CONTROL, _TOKEN_CONTROL]
    kinds += [_TOKEN_BYTE] * 256
    return kinds + [_TOKEN_NORMAL] * (VOCAB - len(kinds))


def _weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every tensor a llama needs, float32, in GGUF's names (numpy shapes: rows, columns)."""

    def matrix(rows: int, cols: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    head_dim = DIMS // HEADS
    ones = np.ones(DIMS, dtype=np.float32)
    output = matrix(VOCAB, DIMS, 0.5)
    output[: len(_CONTROL) + 256] = 0.0  # answers are words: control and byte tokens score 0
    tensors = {
        "token_embd.weight": matrix(VOCAB, DIMS, 1.0),
        "output_norm.weight": ones,
        "output.weight": output,
    }
    for i in range(LAYERS):
        tensors |= {
            f"blk.{i}.attn_norm.weight": ones,
            f"blk.{i}.attn_q.weight": matrix(DIMS, DIMS),
            f"blk.{i}.attn_k.weight": matrix(KV_HEADS * head_dim, DIMS),
            f"blk.{i}.attn_v.weight": matrix(KV_HEADS * head_dim, DIMS),
            f"blk.{i}.attn_output.weight": matrix(DIMS, DIMS),
            f"blk.{i}.ffn_norm.weight": ones,
            f"blk.{i}.ffn_gate.weight": matrix(FEED_FORWARD, DIMS),
            f"blk.{i}.ffn_up.weight": matrix(FEED_FORWARD, DIMS),
            f"blk.{i}.ffn_down.weight": matrix(DIMS, FEED_FORWARD),
        }
    return tensors


def write(path: Path, *, pooling: gguf.PoolingType | None = None) -> Path:
    """Write one tiny llama to ``path`` (atomically); ``pooling`` makes it an embedding model."""
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA]
    scratch = path.with_name(path.name + ".tmp")
    writer = gguf.GGUFWriter(scratch, arch)
    writer.add_name("signalbox-tiny")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(DIMS)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(DIMS // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(VOCAB)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if pooling is not None:
        writer.add_pooling_type(pooling)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocabulary())
    writer.add_token_scores([0.0] * 3 + [0.0] * 256 + [-1.0] * (VOCAB - 259))
    writer.add_token_types(_token_types())
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, tensor in _weights(np.random.default_rng(SEED)).items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    scratch.replace(path)
    return path


def write_all(folder: Path) -> tuple[Path, Path]:
    """The chat and the embedding model in ``folder`` (written only when missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    chat, embed = folder / CHAT, folder / EMBED
    if not chat.exists():
        write(chat)
    if not embed.exists():
        write(embed, pooling=gguf.PoolingType.MEAN)
    return chat, embed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where the GGUF files go")
    args = parser.parse_args(argv)
    for path in write_all(args.folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
