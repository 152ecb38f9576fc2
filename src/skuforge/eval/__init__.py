"""Evaluation against gold data: attribute completion scored like the ExtractGPT / WDC-PAVE papers.

items = load_gold("train.jsonl")                     # OA-Mine, AE-110K or WDC-PAVE layout
report = run_eval("train.jsonl", "local:qwen2.5-0.5b", limit=100, out="report.html")
report["scores"]["normalised"]["micro"]["f1"]
"""

from skuforge.eval.loaders import FORMATS, GoldItem, fill_absent, load_gold
from skuforge.eval.runner import evaluate, run_eval
from skuforge.eval.scoring import Counts, Scores, normalise_value, score

__all__ = [
    "FORMATS",
    "Counts",
    "GoldItem",
    "Scores",
    "evaluate",
    "fill_absent",
    "load_gold",
    "normalise_value",
    "run_eval",
    "score",
]
