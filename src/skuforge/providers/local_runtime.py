"""One loaded llama.cpp model, shared by everything in the process that asks the local model.

`LoadedModel` owns the `llama_cpp.Llama`, the single worker thread every call runs on (llama.cpp is not
thread-safe), and the saved key/value states of the prompts' long static prefixes:

- **Prefix states.** Requests of one recipe step start with the same system prompt and fixed examples, and
  requests for products of one category also share that category's examples; only the end differs per
  row. When a prompt shares a long start with one of the last few prompts, that start, cut back to a
  message boundary, is evaluated once and its KV state saved. A later prompt that starts with a saved
  prefix restores the state (a few MB copied) instead of re-reading it, even after other steps, categories
  or callers (eval, `ask`, the console) have used the context in between. Consecutive prompts that share
  more than a saved prefix reuse the context as it is, or restore the saved prefix and read only the rest.
  A request may say how many of its first messages other requests share (`Request.shared_messages`: the
  step's fixed part and its category's examples); that prefix is saved the first time it is read.
- **Two ways to answer.** `complete` is llama-cpp-python's chat completion (JSON-schema grammar, streaming).
  `extract` decodes an extraction answer itself (see `providers.extraction`): every value null, a span of
  the product text or an allowed value; keys and separators are evaluated as one batch instead of token by
  token, and nothing is compiled per request.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from skuforge.providers.extraction import CLOSERS, AnswerShape, Cursor

MIN_PREFIX = 48
"""A shared prefix is saved only when it is this many tokens longer than the longest one saved already."""
MAX_STATES = 24
MAX_STATE_BYTES = 384 * 1024 * 1024
"""Saved prefix states kept, least recently used dropped first: one per step and product category, each
~13 KB per token for the 0.5B model (~28 KB for the 1.5B), so 1,000 tokens cost 13-28 MB."""
RECENT = 8
"""Recent prompts a new one is compared with to find the prefix they share."""
TOP = 64
"""Candidates tried by logit order before a full sort when the model's favourites break the answer's shape."""
END_BIAS = 1.5
"""Logits in favour of ending a copied value of two words or more where it may end. Left to itself the 0.5B
runs a value on past the attribute (`SF Bay Coffee French Roast` as the brand, `10 oz (Pack of 2)` as the
volume): where the closing quote is within e^1.5 (4.5 times) as likely as the best token that goes on
with a new word, the value ends. A one-word value is left alone (`Rolled Oats` is a flavour, `Rolled` is
not), and so is a word still being written (`SPF 50+`)."""


class PrefixStates:
    """Saved KV states of shared prompt prefixes (LRU), and the recent prompts that reveal new ones.

    A prefix is what a prompt shares with one of the last few prompts, cut back to the start of a message:
    the system prompt and fixed examples of a step, or those plus the examples of one product category.
    """

    def __init__(self) -> None:
        self.recent: deque[tuple[int, ...]] = deque(maxlen=RECENT)
        self.saved: OrderedDict[tuple[int, ...], bytes] = OrderedDict()

    def longest(self, tokens: Sequence[int]) -> tuple[tuple[int, ...], bytes | None]:
        """The longest saved prefix of `tokens` (empty when none) and its state."""
        best: tuple[int, ...] = ()
        for prefix in self.saved:
            if (
                len(prefix) > len(best)
                and len(prefix) < len(tokens)
                and tuple(tokens[: len(prefix)]) == prefix
            ):
                best = prefix
        if not best:
            return best, None
        self.saved.move_to_end(best)
        return best, self.saved[best]

    def shared(self, tokens: Sequence[int], marks: Sequence[int]) -> int:
        """How much of `tokens` a recent prompt shares, cut back to a message start; then remembers it."""
        common = max((_common(seen, tokens) for seen in self.recent), default=0)
        self.recent.append(tuple(tokens))
        common = min(common, len(tokens) - 1)
        return max((m for m in marks if m <= common), default=0)

    def put(self, prefix: tuple[int, ...], state: bytes) -> None:
        self.saved[prefix] = state
        self.saved.move_to_end(prefix)
        while len(self.saved) > MAX_STATES or sum(map(len, self.saved.values())) > MAX_STATE_BYTES:
            self.saved.popitem(last=False)


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class LoadedModel:
    """A GGUF model loaded once; every method here runs on `executor`'s single thread."""

    def __init__(self, llama: Any, path: Path, threads: int, load_s: float) -> None:
        self.llama = llama
        self.path = path
        self.threads = threads
        self.load_s = load_s
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skuforge-llama")
        self.lock = threading.Lock()  # in case a caller bypasses the executor
        self.prefixes = PrefixStates()
        self.stats = {"prefix_restores": 0, "prefix_saves": 0, "reused_tokens": 0}
        self._bytes: dict[int, bytes] = {}
        self._format = _chat_formatter(llama)
        self._vocab = llama.n_vocab()

    # -- prompts ------------------------------------------------------------------------------------------

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat-formatted prompt as tokens, exactly as llama-cpp-python's chat completion forms it."""
        prompt, added_special = self._format(messages)
        return list(self.llama.tokenize(prompt.encode("utf-8"), add_bos=not added_special, special=True))

    def position(self, tokens: Sequence[int], tag: str = "", shared_messages: int = 0) -> tuple[int, int]:
        """Make the context hold the longest reusable start of `tokens`; returns how many tokens it holds
        and how many of those it had to read now (a new shared prefix, read once to be saved).

        The caller then evaluates the rest (`extract`) or lets llama-cpp-python find the same prefix
        (`complete`). `shared_messages` is the request's own hint of the messages other requests share
        (saved the first time they are read, not the second); `tag` (the recipe step) is for statistics."""
        llama = self.llama
        held, read = _common(llama.input_ids[: llama.n_tokens], tokens), 0
        marks = [i for i, t in enumerate(tokens) if t == tokens[0]] if tokens else []
        saved, state = self.prefixes.longest(tokens)
        shared = self.prefixes.shared(tokens, marks)
        if 0 < shared_messages < len(marks):
            shared = max(shared, marks[shared_messages])
        if state is not None and held < len(saved):
            self._restore(saved, state)
            self.stats["prefix_restores"] += 1
            held = len(saved)
        if shared >= len(saved) + MIN_PREFIX:  # a new shared prefix: evaluate it (or cut back to it), save it
            keep = min(held, shared)
            llama.n_tokens = keep
            llama._ctx.kv_cache_seq_rm(0, keep, -1)
            if keep < shared:
                llama.eval(list(tokens[keep:shared]))
                read = shared - keep
            self.prefixes.put(tuple(tokens[:shared]), self._save())
            self.stats["prefix_saves"] += 1
            held = shared
        kept = max(min(held, len(tokens) - 1), 0)  # one token at least is evaluated: fresh logits
        llama.n_tokens = kept
        read = min(read, kept)
        self.stats["reused_tokens"] += kept - read
        return kept, read

    def _save(self) -> bytes:
        ctx = self.llama._ctx.ctx
        import llama_cpp

        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        return bytes(buffer[:written])

    def _restore(self, prefix: tuple[int, ...], state: bytes) -> None:
        import llama_cpp

        llama = self.llama
        llama._ctx.kv_cache_seq_rm(0, -1, -1)
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if llama_cpp.llama_state_seq_set_data(llama._ctx.ctx, buffer, len(state), 0) != len(state):
            llama.reset()
            raise RuntimeError("llama.cpp could not restore a saved prompt prefix")
        llama.input_ids[: len(prefix)] = prefix
        llama.n_tokens = len(prefix)

    # -- the two ways to answer ------------------------------------------------------------------------

    def complete(
        self, params: dict[str, Any], tag: str, stream: bool = False, shared_messages: int = 0
    ) -> Any:
        """llama-cpp-python's chat completion, after restoring the tag's prefix state when that helps; its
        usage counts the prompt tokens that were not read again (`cached_tokens`)."""
        held, read = self.position(self.prompt_tokens(params["messages"]), tag, shared_messages)
        response = self.llama.create_chat_completion(stream=stream, **params)
        if not stream and isinstance(response.get("usage"), dict):
            response["usage"]["cached_tokens"] = held - read
        return response

    def extract(
        self,
        messages: list[dict[str, str]],
        shape: AnswerShape,
        max_tokens: int | None,
        tag: str,
        shared_messages: int = 0,
    ) -> dict[str, Any]:
        """Decode an extraction answer greedily, keeping to `shape`; an OpenAI-style response dict."""
        started = time.perf_counter()
        tokens = self.prompt_tokens(messages)
        budget = max_tokens or 512
        if len(tokens) + budget > self.llama.n_ctx():
            raise ValueError(
                f"Requested tokens ({len(tokens)} + {budget}) exceed context window of {self.llama.n_ctx()}"
            )
        reused, read = self.position(tokens, tag, shared_messages)
        pending = list(tokens[reused:])
        cursor, out = Cursor(shape), bytearray()
        sampled = produced = 0
        finish = "stop"
        while not cursor.done:
            forced = cursor.forced()
            if forced:
                cursor.feed(forced)
                out += forced
                more = self.llama.tokenize(forced, add_bos=False, special=False)
                pending += more
                produced += len(more)
                continue
            if sampled >= budget:
                finish = "length"
                break
            self.llama.eval(pending)
            token, data = self._best(cursor)
            cursor.feed(data)
            out += data
            pending = [token]
            sampled += 1
            produced += 1
        return {
            "id": f"local-extract-{time.time_ns()}",
            "choices": [{"message": {"content": out.decode("utf-8", "replace")}, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": len(tokens),
                "completion_tokens": produced,
                "cached_tokens": reused - read,
                "seconds": time.perf_counter() - started,
            },
        }

    def _best(self, cursor: Cursor) -> tuple[int, bytes]:
        """The most likely token that keeps the answer in shape (greedy, temperature 0), except that a value
        being copied ends when ending it is within `END_BIAS` of the best token, if that starts a new word."""
        logits = np.ctypeslib.as_array(self.llama._ctx.get_logits(), shape=(self._vocab,))
        top = np.argpartition(logits, -TOP)[-TOP:]
        may_end = cursor.may_end
        for order in (top[np.argsort(logits[top])[::-1]], np.argsort(logits)[::-1]):
            best: tuple[int, bytes] | None = None
            for token in order:
                if best is not None and logits[token] + END_BIAS < logits[best[0]]:
                    return best
                data = self._token_bytes(int(token))
                if not data or not cursor.accepts(data):
                    continue
                if not may_end or data[:1] == b'"':
                    return int(token), data
                if best is None:
                    if _same_word(data):
                        return int(token), data  # `SPF 50+`, `GUM®`: the word is still being written
                    best = (int(token), data)
            if best is not None:
                return best
        raise RuntimeError("no token of the vocabulary continues the answer")

    def _token_bytes(self, token: int) -> bytes:
        data = self._bytes.get(token)
        if data is None:
            data = b"" if self._is_control(token) else self.llama.detokenize([token], special=False)
            self._bytes[token] = data
        return data

    def _is_control(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_control(self.llama._model.vocab, token)) or bool(
            llama_cpp.llama_vocab_is_eog(self.llama._model.vocab, token)
        )

    def close(self) -> None:
        self.llama.close()
        self.executor.shutdown(wait=False)


def _same_word(data: bytes) -> bool:
    """Whether a token goes on with the word before it: a letter, a digit or a closing mark (`+`, `®`, `)`),
    not a space or a separator such as `,` or `.`."""
    char = data[:4].decode("utf-8", "ignore")[:1]
    return bool(char) and (char.isalnum() or char in CLOSERS)


def _chat_formatter(llama: Any) -> Callable[[list[dict[str, str]]], tuple[str, bool]]:
    """(prompt, whether it already holds BOS) for messages, by the model's own chat template."""
    from llama_cpp import llama_chat_format

    template = (llama.metadata or {}).get("tokenizer.chat_template")
    if not template:

        def chatml(messages: list[dict[str, str]]) -> tuple[str, bool]:
            body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
            return body + "<|im_start|>assistant\n", False

        return chatml
    eos, bos = llama.token_eos(), llama.token_bos()
    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
        bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
    )

    def render(messages: list[dict[str, str]]) -> tuple[str, bool]:
        result = formatter(messages=messages)  # type: ignore[arg-type]
        return result.prompt, bool(result.added_special)

    return render


def iterate(chunks: Iterator[dict[str, Any]]) -> Iterator[str]:
    """The text pieces of a streamed chat completion."""
    for chunk in chunks:
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            yield text
