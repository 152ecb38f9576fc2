"""The support check declines answers the product data does not back, whatever the model claims."""

from __future__ import annotations

from skuforge.knowledge.support import DECLINE, evidence_text, is_supported, second_opinion

ROW = {
    "title": "Anker PowerCore 10000 portable charger, 10000 mAh, USB-C",
    "weight": "180 g",
    "question": "?",
}
EVIDENCE = evidence_text(ROW, "question")


def test_an_answer_built_from_the_data_is_supported() -> None:
    assert is_supported("It weighs 180 g.", "How heavy is it?", EVIDENCE)


def test_a_yes_that_only_echoes_the_question_needs_the_question_words_in_the_data() -> None:
    assert is_supported("Yes, it has USB-C.", "Does it have USB-C?", EVIDENCE)
    assert not is_supported("Yes, it is waterproof.", "Is it waterproof?", EVIDENCE)


def test_chinese_answers_are_compared_by_character_pairs() -> None:
    assert is_supported("它重180克", "这个多重？", "充电宝 重量 180克")
    assert not is_supported("它是防水的", "防水吗？", "充电宝 重量 180克")


def test_passages_quoted_in_the_prompt_count_as_evidence() -> None:
    prompt = '<reference source="guide.md#Care">Splash-proof to IPX4; do not submerge.</reference>'
    evidence = evidence_text(ROW, "question", prompt)
    assert is_supported("It is splash-proof to IPX4.", "Is it waterproof?", evidence)


def test_an_unsupported_claim_is_turned_into_a_decline() -> None:
    claimed = {"answerable": True, "answer": "Yes, it is waterproof.", "cited_fields": ["title"]}
    out = second_opinion(claimed, "Is it waterproof?", EVIDENCE)
    assert out["answerable"] is False and out["answer"] == DECLINE and out["declined_by"] == "support check"
    kept = {"answerable": True, "answer": "It weighs 180 g.", "cited_fields": ["weight"]}
    assert second_opinion(kept, "How heavy is it?", EVIDENCE) == kept


def test_the_answer_support_check_flags_a_guess_in_a_qa_run() -> None:
    from skuforge.checks.base import CheckItem, CheckSpec, build

    check = build(CheckSpec(check="answer_support"))
    row = {**ROW, "question": "Is it waterproof?"}
    guess = check(CheckItem(row=row, output={"answerable": True, "answer": "Yes, it is waterproof."}))
    assert [f.ok for f in guess] == [False]
    decline = check(CheckItem(row=row, output={"answerable": False, "answer": DECLINE}))
    assert [f.ok for f in decline] == [True]
