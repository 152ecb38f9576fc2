"""The `answer_support` check: a Q&A answer that claims to be answerable must be backed by the product row.

Small models mark almost every shopper question answerable. This check flags an answer whose added words are
mostly absent from the product's fields (see `skuforge.knowledge.support`), so it goes to review instead of
going live. Params: `question_field` (default `question`), `answer_field` (`answer`), `flag_field`
(`answerable`).
"""

from __future__ import annotations

from skuforge.checks.base import CheckItem, CheckSpec, Finding, register
from skuforge.knowledge.support import evidence_text, is_supported


class AnswerSupport:
    name = "answer_support"

    def __init__(self, spec: CheckSpec) -> None:
        params = spec.params
        self.action = spec.on_fail
        self.question = str(params.get("question_field", "question"))
        self.answer = str(params.get("answer_field", "answer"))
        self.flag = str(params.get("flag_field", "answerable"))

    def __call__(self, item: CheckItem) -> list[Finding]:
        output = item.output if isinstance(item.output, dict) else {}
        if not output.get(self.flag):
            return [Finding(check=self.name, ok=True, action=self.action)]
        question = str(item.row.get(self.question, ""))
        answer = str(output.get(self.answer, ""))
        if is_supported(answer, question, evidence_text(item.row, self.question)):
            return [Finding(check=self.name, ok=True, action=self.action)]
        return [
            Finding(
                check=self.name,
                ok=False,
                action=self.action,
                field=self.answer,
                reason=f"The answer '{answer[:80]}' is not backed by the product data; it may be a guess.",
            )
        ]


@register("answer_support")
def build(spec: CheckSpec) -> AnswerSupport:
    return AnswerSupport(spec)
