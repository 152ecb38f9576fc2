"""Run the scale scenarios, one at a time, for skuforge and two reference clients, and print one table.

    python -m bench scale [--only S1,S1r] [--skip S5m] [--workdir DIR] [--json FILE]

Each scenario runs twice: with the one-field bench recipe (S1..S5) and with the realistic listing recipe
(S1r..S5r: twelve product fields in, a title and a list of selling points out, schema and length checks).
Each starts a fresh mock server process; each client is a child process measured with wait4 (CPU seconds
and peak RSS of that process only). skuforge runs as `skuforge run` on a generated CSV with a fresh
SKUFORGE_HOME, so reading, rendering, the store, the cache, checks and the export are all counted. The
references get the same request bodies pre-rendered: `aiohttp` is a bare aiohttp + orjson loop (the floor),
`openai SDK` the vendor SDK with a semaphore.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import sqlite3
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.scale.catalog import MODEL, RECIPES, expected, write_catalog
from bench.scale.measure import ChildRun, run_child
from bench.scale.mockproc import MockProcess
from bench.scale.scenarios import Scenario, scenarios

csv.field_size_limit(1 << 24)


@dataclass(slots=True)
class Outcome:
    scenario: str
    rows: int
    wall_s: float
    run_s: float | None
    minimum_s: float
    cpu_s: float
    peak_rss_mb: float
    requests: int
    resent_after_success: int
    resent_received: int | None
    rows_correct: int
    rows_failed: int
    server_cpu_s: float
    client: str = "skuforge"
    note: str = ""

    @property
    def efficiency(self) -> float | None:
        return self.minimum_s / self.wall_s if self.minimum_s else None

    @property
    def run_efficiency(self) -> float | None:
        return self.minimum_s / self.run_s if self.minimum_s and self.run_s else None

    @property
    def cpu_per_1k(self) -> float:
        return self.cpu_s / max(self.requests, 1) * 1000


def _catalog(workdir: Path, rows: int, recipe: str = "one-field") -> Path:
    wide = recipe == "realistic"
    path = workdir / f"catalog-{rows}{'-wide' if wide else ''}.csv"
    if not path.exists():
        write_catalog(path, rows, wide=wide)
    return path


def _env(mock: MockProcess, home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "SKUFORGE_HOME": str(home),
        "OPENAI_BASE_URL": mock.url,
        "OPENAI_API_KEY": "bench",
        "SKUFORGE_CACHE": str(home / "cache"),
    }


def _answers(catalog: Path, every: int, recipe: str) -> dict[str, str]:
    path, field = RECIPES[recipe]
    return {e.row_id: json.loads(e.answer)[field] for e in expected(catalog, every, path)}


def _finished_rows(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT row_id FROM items WHERE status IN ('done', 'flagged')")}


def _received_resent(
    before: dict[str, Any], after: dict[str, Any], keys: dict[str, str], rows: set[str]
) -> int:
    """Rows the client had stored before the kill that were requested again afterwards."""
    b, a = before["requests_per_prompt"], after["requests_per_prompt"]
    return sum(1 for r in rows if a.get(keys[r], 0) > b.get(keys[r], 0))


def run_skuforge(sc: Scenario, mock: MockProcess, workdir: Path) -> Outcome:
    catalog = _catalog(workdir, sc.rows, sc.recipe)
    recipe, field = RECIPES[sc.recipe]
    home, out = workdir / sc.name / "skuforge", workdir / sc.name / "skuforge-out.csv"
    shutil.rmtree(home, ignore_errors=True)
    out.unlink(missing_ok=True)
    env = _env(mock, home)
    args = [
        sys.executable,
        "-m",
        "skuforge.cli.main",
        "run",
        str(catalog),
        "--recipe",
        str(recipe),
        "--model",
        f"openai:{MODEL}",
        "--out",
        str(out),
        "--concurrency",
        str(sc.concurrency),
        "--timeout",
        str(sc.timeout_s),
        "--json",
        *(["--rpm", str(sc.rpm)] if sc.rpm else []),
    ]
    runs: list[ChildRun] = []
    resent_received = None
    if sc.kill_half:
        half = sc.rows // 2
        runs.append(
            run_child(args, env, home / "run1.log", kill_when=lambda: mock.stats()["successes"] >= half)
        )
        before, stored = mock.stats(detail=True), _finished_rows(home / "skuforge.db")
    runs.append(run_child(args, env, home / "run.log"))
    stats = mock.stats(detail=sc.kill_half)
    if sc.kill_half:
        keys = {e.row_id: e.prompt_key for e in expected(catalog, recipe_path=recipe)}
        resent_received = _received_resent(before, stats, keys, stored)
    if runs[-1].returncode != 0:
        print(runs[-1].stdout[-3000:], file=sys.stderr)
    answers = _answers(catalog, sc.verify_every, sc.recipe)
    correct, failed = _check_export(
        out, answers, sc.rows, f"bench_{field}" if sc.recipe == "realistic" else "bench_tagline"
    )
    calls = _calls(runs[-1].stdout)
    hedged = f"{calls.get('hedges', 0)} hedged ({calls.get('hedge_wins', 0)} won)" if calls else ""
    return Outcome(
        sc.name,
        sc.rows,
        sum(r.wall_s for r in runs),
        _run_s(runs[-1].stdout) if not sc.kill_half else None,
        sc.minimum_s(),
        sum(r.cpu_s for r in runs),
        max(r.peak_rss_mb for r in runs),
        stats["requests"],
        stats["resent_after_success"],
        resent_received,
        correct,
        failed,
        mock.cpu_s(),
        client="skuforge",
        note=f"killed at {len(stored):,} stored rows" if sc.kill_half else hedged,
    )


def _summary(stdout: str) -> dict[str, Any]:
    """The object `skuforge run --json` prints last, pretty-printed: it starts at a line that is `{` alone
    (the log also holds stderr's notes, which may quote braces)."""
    starts = [m.start() for m in re.finditer(r"^\{$", stdout, re.M)]
    try:
        return dict(json.loads(stdout[starts[-1] :])) if starts else {}
    except ValueError:
        return {}


def _calls(stdout: str) -> dict[str, Any]:
    """The call counters of `skuforge run --json` (retries, hedges, timeouts), {} when absent."""
    return dict(_summary(stdout).get("calls") or {})


def _run_s(stdout: str) -> float | None:
    elapsed = _summary(stdout).get("elapsed_s")
    return float(elapsed) if elapsed is not None else None


def _check_export(out: Path, answers: dict[str, str], rows: int, column: str) -> tuple[int, int]:
    """(rows done with the right answer, rows failed); rows outside the sample count when done."""
    if not out.exists():
        return 0, rows
    done = failed = wrong = 0
    seen: set[str] = set()
    with out.open(encoding="utf-8-sig", newline="") as f:
        for rec in csv.DictReader(f):
            sku = rec["sku"]
            if sku in seen:
                wrong += 1
                continue
            seen.add(sku)
            status = rec["skuforge_status"]
            done += status == "done"
            failed += status == "failed"
            if status == "done" and sku in answers and rec[column] != answers[sku]:
                wrong += 1
    failures = out.with_name(out.stem + ".failures" + out.suffix)
    return done - wrong, max(failed, rows - len(seen)) if not failures.exists() else failed


REFERENCES = {"aiohttp": "bench.scale.bare", "openai SDK": "bench.scale.reference"}


def run_reference(sc: Scenario, mock: MockProcess, workdir: Path, client: str) -> Outcome | None:
    rows = sc.rows if sc.reference_rows is None else sc.reference_rows
    if not rows:
        return None
    catalog = _catalog(workdir, rows, sc.recipe)
    base = workdir / sc.name / client.replace(" ", "-")
    base.mkdir(parents=True, exist_ok=True)
    bodies, results = base / "bodies.jsonl", base / "results.jsonl"
    items = list(expected(catalog, recipe_path=RECIPES[sc.recipe][0]))
    with bodies.open("w") as f:
        for e in items:
            f.write(json.dumps({"row_id": e.row_id, "body": e.body}) + "\n")
    results.unlink(missing_ok=True)
    args = [
        sys.executable,
        "-m",
        REFERENCES[client],
        str(bodies),
        str(results),
        "--base-url",
        mock.url,
        "--concurrency",
        str(sc.concurrency),
        "--timeout",
        str(sc.timeout_s),
    ]
    env = {**os.environ}
    runs = []
    if sc.kill_half:
        half = rows // 2
        runs.append(
            run_child(args, env, base / "run1.log", kill_when=lambda: mock.stats()["successes"] >= half)
        )
        results.unlink()  # no store: it starts over
    runs.append(run_child(args, env, base / "run.log"))
    stats = mock.stats()
    got: dict[str, dict[str, Any]] = {}
    for line in results.read_text().splitlines():
        rec = json.loads(line)
        got[rec["row_id"]] = rec
    correct = sum(1 for e in items if (got.get(e.row_id) or {}).get("text") == e.answer)
    failed = sum(1 for e in items if "text" not in (got.get(e.row_id) or {}))
    return Outcome(
        sc.name,
        rows,
        sum(r.wall_s for r in runs),
        _run_s(runs[-1].stdout) if not sc.kill_half else None,
        sc.minimum_s() * rows / sc.rows,
        sum(r.cpu_s for r in runs),
        max(r.peak_rss_mb for r in runs),
        stats["requests"],
        stats["resent_after_success"],
        None,
        correct,
        failed,
        mock.cpu_s(),
        client=client,
        note="no store: a rerun sends every row again" if sc.kill_half else "",
    )


def run_scenario(sc: Scenario, workdir: Path, reference: bool) -> list[Outcome]:
    results = []
    with MockProcess(**sc.mock) as mock:
        results.append(run_skuforge(sc, mock, workdir))
    print(row_text(results[-1]), flush=True)
    for client in REFERENCES if reference else ():
        with MockProcess(**sc.mock) as mock:
            ref = run_reference(sc, mock, workdir, client)
        if ref is not None:
            results.append(ref)
            print(row_text(ref), flush=True)
    return results


HEADER = (
    f"{'scen':<5} {'client':<10} {'rows':>9} {'wall s':>7} {'min s':>6} {'eff':>5} {'eff run':>7} "
    f"{'CPU s/1k':>8} {'RSS MB':>7} {'requests':>9} {'resent':>6} {'rs recv':>7} {'correct':>9} "
    f"{'failed':>6} {'srv CPU':>7}  note"
)


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def row_text(o: Outcome) -> str:
    return (
        f"{o.scenario:<5} {o.client:<10} {o.rows:>9,} {o.wall_s:>7.1f} {_f(o.minimum_s or None, '6.1f'):>6} "
        f"{_f(o.efficiency, '.2f'):>5} {_f(o.run_efficiency, '.2f'):>7} {o.cpu_per_1k:>8.2f} "
        f"{o.peak_rss_mb:>7.0f} {o.requests:>9,} {o.resent_after_success:>6,} "
        f"{_f(o.resent_received, 'd'):>7} {o.rows_correct:>9,} {o.rows_failed:>6,} "
        f"{o.server_cpu_s:>7.1f}  {o.note}"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated scenario names (S1..S5, S1r..S5r, S5m)")
    p.add_argument("--skip", default="", help="comma-separated scenarios to leave out")
    p.add_argument("--no-reference", action="store_true", help="skip the reference clients' runs")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/skuforge-bench"))
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    table = scenarios()
    names = args.only.split(",") if args.only else [n for n in table if n not in args.skip.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(HEADER, flush=True)
    outcomes = []
    for name in names:
        outcomes += run_scenario(table[name], args.workdir, not args.no_reference)
    print("\n" + HEADER)
    for o in outcomes:
        print(row_text(o))
    print(
        "\neff = theoretical minimum / process wall; eff run = minimum / the client's own run time (no "
        "start-up, import or export); resent = requests for a prompt the server had already answered; "
        "rs recv = of those, rows the client had stored before the kill."
    )
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
