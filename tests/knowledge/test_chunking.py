"""Chunking keeps heading paths, never cuts a CJK sentence, and respects the token cap."""

from __future__ import annotations

from pathlib import Path

from skuforge.knowledge.chunking import chunk_markdown, html_to_markdown, split_sentences
from skuforge.knowledge.sources import detect_locale, load_source
from skuforge.providers.tokens import estimate_tokens

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "knowledge"
CJK_ENDS = ("。", "！", "？", "；")


def test_markdown_chunks_carry_their_heading_path() -> None:
    chunks = chunk_markdown((FIXTURES / "style-guide.md").read_text(encoding="utf-8"))
    by_heading = {c.heading: c.text for c in chunks}
    assert "Brand style guide > Product care > Footwear" in by_heading
    assert "soft brush" in by_heading["Brand style guide > Product care > Footwear"]
    assert "Brand style guide > Product care > Electric toothbrushes" in by_heading
    assert "三十天" in by_heading["Brand style guide > 退换货政策"]


def test_a_heading_inside_a_code_fence_is_not_a_heading() -> None:
    chunks = chunk_markdown("# Top\nText here.\n```\n# not a heading\n```\nMore text.")
    assert {c.heading for c in chunks} == {"Top"}


def test_cjk_sentences_split_on_cjk_punctuation_and_keep_it() -> None:
    text = "这款鞋很轻。适合跑步！你喜欢吗？「好的。」尺码偏小；建议买大一码"
    assert split_sentences(text) == [
        "这款鞋很轻。",
        "适合跑步！",
        "你喜欢吗？",
        "「好的。」",
        "尺码偏小；",
        "建议买大一码",
    ]


def test_latin_sentences_split_on_terminal_punctuation_but_not_decimals() -> None:
    assert split_sentences("It weighs 3.5 kg. Really? Yes! ok") == [
        "It weighs 3.5 kg.",
        "Really?",
        "Yes!",
        "ok",
    ]


def test_cjk_text_is_never_split_mid_sentence_under_a_small_cap() -> None:
    sentence = "本产品采用优质不锈钢材料制成，耐腐蚀、易清洁，适合日常厨房使用。"
    text = "# 说明\n" + sentence * 12
    chunks = chunk_markdown(text, max_tokens=60, overlap_tokens=0)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text.endswith(CJK_ENDS), chunk.text
        assert chunk.text.replace(sentence, "") == ""


def test_every_chunk_respects_the_token_cap() -> None:
    text = (FIXTURES / "parts.md").read_text(encoding="utf-8") * 3
    chunks = chunk_markdown(text, max_tokens=50, overlap_tokens=10)
    assert max(estimate_tokens(c.text) for c in chunks) <= 50
    assert any(estimate_tokens(c.text) > 30 for c in chunks)


def test_a_sentence_longer_than_the_cap_is_cut_at_spaces() -> None:
    long = " ".join(["waterproof"] * 80) + "."
    chunks = chunk_markdown(long, max_tokens=40, overlap_tokens=0)
    assert len(chunks) > 1
    assert all(estimate_tokens(c.text) <= 40 for c in chunks)
    assert all("waterproo " not in c.text + " " for c in chunks)


def test_overlap_repeats_the_last_sentence_of_the_previous_chunk() -> None:
    sentences = [f"Sentence number {i} is here." for i in range(20)]
    chunks = chunk_markdown(" ".join(sentences), max_tokens=40, overlap_tokens=10)
    for before, after in zip(chunks, chunks[1:], strict=False):
        last = split_sentences(before.text)[-1]
        assert after.text.startswith(last)


def test_html_headings_become_markdown_and_scripts_vanish() -> None:
    text = html_to_markdown((FIXTURES / "brand-facts.html").read_text(encoding="utf-8"))
    assert "# Brand facts" in text and "## Warranty" in text
    assert "console.log" not in text and "font-family" not in text
    assert "five-year warranty" in text


def test_table_ingest_makes_one_chunk_per_product_with_metadata() -> None:
    content = load_source(
        FIXTURES / "products.csv", category=None, locale=None, max_tokens=300, overlap_tokens=40
    )
    assert content.kind == "table"
    assert len(content.chunks) == 44
    first = content.chunks[0]
    assert first.heading == "BTC00388CT - Bigelow Classic Green Tea"
    assert first.meta["category"] == "Tea"
    assert first.meta["locale"] == "en"
    assert first.meta["row_id"] == "1"


def test_locale_is_detected_from_script_and_function_words() -> None:
    assert detect_locale("退款将在五个工作日内原路退回") == "zh"
    assert detect_locale("Die Schuhe sind leicht und für den Alltag") == "de"
    assert detect_locale("The shoes are light and good for the trail") == "en"


def test_jsonl_tables_and_gb18030_text_are_read(tmp_path: Path) -> None:
    table = tmp_path / "approved.jsonl"
    table.write_text(
        '{"title": "登山鞋", "类目": "鞋靴", "copy": "防水透气"}\n{"title": "Tent", "category": "Outdoor"}\n',
        encoding="utf-8",
    )
    rows = load_source(table, category=None, locale=None, max_tokens=300, overlap_tokens=40).chunks
    assert [(c.heading, c.meta["category"], c.meta["locale"]) for c in rows] == [
        ("登山鞋", "鞋靴", "zh"),
        ("Tent", "Outdoor", "en"),
    ]
    doc = tmp_path / "guide.txt"
    doc.write_bytes("# 保养\n请用软毛刷清洁鞋面。不要机洗！".encode("gb18030"))
    chunks = load_source(doc, category="鞋靴", locale=None, max_tokens=300, overlap_tokens=40).chunks
    assert chunks[0].heading == "保养" and chunks[0].text.startswith("请用软毛刷")
    assert chunks[0].meta == {"category": "鞋靴", "locale": "zh"}
