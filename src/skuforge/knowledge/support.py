"""Is an answer supported by the product data? A cheap, deterministic second opinion on the model's own
"answerable" flag, which small models set to true for almost every question.

An answer is supported when most of the words it adds to the question appear in the evidence (the product's
fields and the quoted passages). An answer that only echoes the question ("Yes, it is waterproof.") is
supported when the question's own key words appear in the evidence ("waterproof: yes"). Latin words are
compared lower-cased; Chinese text by character pairs.
"""

from __future__ import annotations

import re
from typing import Any

DECLINE = "Sorry, the product information does not say."
_LATIN = re.compile(r"[a-z0-9][a-z0-9.\-']*", re.IGNORECASE)
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_REFERENCE = re.compile(r"<reference[^>]*>(.*?)</reference>", re.S)
_STOP_WORDS = """a an and are as at be but by can could do does for from has have how i if in is it its
it's of on or so than that the their there these they this to was what when where which who will with would
yes no not you your product item sorry information does say says about size"""
_STOP = frozenset(_STOP_WORDS.split())
MIN_SHARE = 0.5


def words(text: str) -> set[str]:
    latin = {w.strip(".-'").lower() for w in _LATIN.findall(text)}
    cjk = {run[i : i + 2] for run in _CJK_RUN.findall(text) for i in range(max(1, len(run) - 1))}
    return {w for w in latin | cjk if w and w not in _STOP}


def evidence_text(row: dict[str, Any], question_field: str, prompt_text: str = "") -> str:
    fields = " ".join(str(v) for k, v in row.items() if k != question_field and v not in (None, ""))
    return fields + " " + " ".join(_REFERENCE.findall(prompt_text))


def is_supported(answer: str, question: str, evidence: str) -> bool:
    found = words(evidence)
    asked = words(question)
    added = words(answer) - asked
    if added:
        return len(added & found) / len(added) >= MIN_SHARE
    return bool(asked) and len(asked & found) / len(asked) >= MIN_SHARE


def second_opinion(output: dict[str, Any], question: str, evidence: str) -> dict[str, Any]:
    """The model's answer, or a decline when it claims an answer the evidence does not support."""
    if not output.get("answerable") or is_supported(str(output.get("answer", "")), question, evidence):
        return output
    return {**output, "answerable": False, "answer": DECLINE, "declined_by": "support check"}
