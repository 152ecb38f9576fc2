"""Token estimates for hosted models, calibrated separately for CJK and Latin script.

Exact counts come from a provider's own tokenizer (the local model) or from the usage a provider returns.
"""

from __future__ import annotations

import re

# Measured on Qwen2.5 / GPT-4o-class BPE vocabularies: ~0.7 tokens per CJK character, ~0.27 per Latin char.
CJK_TOKENS_PER_CHAR = 0.7
LATIN_TOKENS_PER_CHAR = 0.27
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    cjk = len(_CJK.findall(text))
    other = len(text) - cjk
    return max(1, round(cjk * CJK_TOKENS_PER_CHAR + other * LATIN_TOKENS_PER_CHAR))
