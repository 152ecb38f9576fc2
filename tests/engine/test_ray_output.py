"""A Ray job's output folder, read and written without Ray: whole parts and the pieces a running block writes,
the latest run wins per item."""

from __future__ import annotations

import asyncio
from pathlib import Path

from skuforge.engine.ray_output import OutputFolder, latest, part_name, piece_name, records_of
from skuforge.engine.ray_workers import PIECE_ROWS, Journal
from skuforge.store import ItemOutcome


def outcome(row: int, text: str, status: str = "done") -> ItemOutcome:
    return ItemOutcome(
        row_id=f"S{row}", row_index=row, step="title", key=f"{row:064x}", status=status,
        output={"title": text}, cost=0.001, attempts=1,
    )  # fmt: skip


def test_a_rerun_or_a_retried_block_replaces_earlier_outcomes_item_by_item(tmp_path: Path) -> None:
    folder = OutputFolder(str(tmp_path / "job"))
    folder.ensure()
    folder.write(part_name(1, 0, 2), [outcome(0, "first"), outcome(1, "first"), outcome(2, "first")], run=1)
    folder.write(part_name(1, 0, 2), [outcome(0, "retry"), outcome(1, "retry"), outcome(2, "retry")], run=1)
    folder.write(part_name(2, 1, 1), [outcome(1, "second run", "flagged")], run=2)
    (tmp_path / "job" / f"{part_name(3, 0, 0)}.tmp-1a2b3c4d").write_bytes(b"half a file")  # a killed writer

    assert [(p.run, p.first, p.last) for p in folder.parts()] == [(1, 0, 2), (2, 1, 1)]
    rows = [r for batch in latest(folder) for r in records_of(_table(batch))]
    assert {r.row_id: (r.output["title"], r.status) for r in rows} == {
        "S0": ("retry", "done"),
        "S1": ("second run", "flagged"),
        "S2": ("retry", "done"),
    }
    folder.clean()
    assert [p.name for p in (tmp_path / "job").iterdir() if ".tmp-" in p.name] == []
    assert folder.runs() == 2


def test_a_part_is_read_back_as_the_outcomes_that_were_written(tmp_path: Path) -> None:
    folder = OutputFolder(str(tmp_path))
    written = [outcome(7, "Kettle, 1.7 l"), outcome(8, "", "failed")]
    written[1].error, written[1].findings = "schema: missing title", [{"check": "schema", "ok": False}]
    path = folder.write(part_name(1, 7, 8), written, run=1)
    back = folder.records(path)
    assert [(r.row_id, r.status, r.output, r.error, r.findings, r.cost) for r in back] == [
        (o.row_id, o.status, o.output, o.error, o.findings, o.cost) for o in written
    ]
    assert [r.row_id for r in folder.records(path, ("failed",))] == ["S8"]


def _table(batch: object) -> object:
    import pyarrow as pa

    return pa.Table.from_batches([batch])  # type: ignore[list-item]


def test_a_blocks_pieces_are_parts_until_its_part_replaces_them(tmp_path: Path) -> None:
    folder = OutputFolder(str(tmp_path / "job"))
    folder.ensure()
    name = part_name(1, 0, 1)
    assert folder.block(name) == []
    folder.write(piece_name(name, 0), [outcome(0, "piece 0", "failed")], run=1)
    folder.write(piece_name(name, 1), [outcome(0, "piece 1"), outcome(1, "piece 1")], run=1)

    assert [p.piece for p in folder.block(name)] == [0, 1]
    assert _titles(folder) == {"S0": "piece 1", "S1": "piece 1"}  # the later piece wins
    folder.write(name, [outcome(0, "part"), outcome(1, "part")], run=1)
    assert _titles(folder) == {"S0": "part", "S1": "part"}  # the block's part wins over its pieces
    assert [p.piece for p in folder.block(name)] == [None, 0, 1]
    assert folder.block(part_name(1, 2, 3)) == []


def test_a_journal_writes_a_piece_every_piece_rows_outcomes(tmp_path: Path) -> None:
    folder = OutputFolder(str(tmp_path / "job"))
    folder.ensure()

    async def block() -> tuple[list[str], int]:
        journal = Journal(folder, part_name(2, 0, 199), run=2, first_piece=3)
        for row in range(150):
            journal.add([outcome(row, f"row {row}")])
        return await journal.close(), len(journal.pending)

    written, pending = asyncio.run(block())
    assert [Path(p).name for p in written] == [
        piece_name(part_name(2, 0, 199), 3),
        piece_name(part_name(2, 0, 199), 4),
    ]
    assert [len(folder.records(p)) for p in written] == [PIECE_ROWS, PIECE_ROWS]
    assert pending == 150 - 2 * PIECE_ROWS  # written with the block's part


def _titles(folder: OutputFolder) -> dict[str, str]:
    return {r.row_id: r.output["title"] for batch in latest(folder) for r in records_of(_table(batch))}
