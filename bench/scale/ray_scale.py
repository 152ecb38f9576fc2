"""The Ray executor at scale (issue 12), side by side with the local executor, on this machine.

    python -m bench ray [--rows 1000000] [--kill-rows 200000] [--only local,ray,kills] [--workdir DIR]
                        [--json FILE] [--concurrency 512] [--workers N] [--block-rows 512]

Every run is `skuforge run` on the same generated CSV (the scale suite's `bench` recipe: one short JSON answer
per row, checked against its schema) against the project's mock server in its own process, with 0 latency,
so the client's own cost per row is what is measured. The Ray runs use a Ray head this benchmark starts for
itself (`ray start --head`, two CPUs, its own temp folder; the CLI joins it with `--ray-address`), exactly
as on a cluster. Measured, for each run:

- wall and CPU: the driver, plus every process of the Ray head (raylet, GCS, workers) for Ray runs; CPU is
  sampled every half second per process, so a worker that exits keeps what it used;
- seconds per tenth of the rows (100k rows at 1M), from the server's count of answered requests crossing
  each tenth, so the figures hold for both executors alike (the export at the end is in the wall time only);
- private memory (USS) of every process at each tenth, and its peak: a Ray worker's resident size also
  counts the pages of Ray's shared object store it has read, which are bounded by the store, not by rows;
- kills (results in the output folder, as for runs over 100k rows): one worker actor `ray.kill`ed at 40% of
  the rows, the run finishing by itself; and, in another run, the driver `kill -9`ed at 50%, then the same
  command again. Counted from the server: rows answered more than once, and of those the rows that were
  durable (in a part of the output folder) before the driver was killed, which must be 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.scale.catalog import COLUMN, MODEL, RECIPE, expected, write_catalog
from bench.scale.measure import run_child
from bench.scale.mockproc import MockProcess

MARKS = 10
"""Times and memory are read each time another tenth of the rows is answered (100k rows at 1M)."""


@dataclass
class Sample:
    at_s: float
    answered: int
    rss_mb: dict[str, float]  # per process (role and pid)


@dataclass
class Figures:
    executor: str
    rows: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    cpu_by_role: dict[str, float] = field(
        default_factory=dict
    )  # sampled: the driver's last half second may be missing
    marks_s: list[float] = field(default_factory=list)  # when the server had answered each tenth
    rss_at_marks: dict[str, list[float]] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    tokens_in_per_request: float = 0.0
    tokens_out_per_request: float = 0.0
    resent_after_success: int = 0
    rows_correct: int = 0
    rows_failed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def per_step_s(self) -> list[float]:
        return [b - a for a, b in zip([0.0, *self.marks_s], self.marks_s, strict=False)]


class RayHead:
    """`ray start --head` with its own temp folder and ports; stopped by killing only its own processes."""

    def __init__(self, root: Path, cpus: int = 2) -> None:
        self.root, self.cpus = root, cpus
        self.address = ""

    def __enter__(self) -> RayHead:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        port = _free_port()
        args = [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}",
            f"--num-cpus={self.cpus}", f"--temp-dir={self.root}", "--include-dashboard=false",
            "--disable-usage-stats", f"--node-manager-port={_free_port()}",
            f"--object-manager-port={_free_port()}",
            f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}", f"--metrics-export-port={_free_port()}",
        ]  # fmt: skip
        subprocess.run(args, check=True, capture_output=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
        self.address = f"127.0.0.1:{port}"
        return self

    def processes(self) -> list[Any]:
        import psutil

        found = []
        mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid in mine:
                continue
            try:
                if any(str(self.root) in part for part in proc.info["cmdline"] or []):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        # Ray's workers retitle themselves (`ray::MapWorker(...)`), so their command line no longer names
        # the head's folder: they are found as children of the raylet
        pids = {p.pid for p in found}
        for proc in list(found):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                found += [c for c in proc.children(recursive=True) if c.pid not in pids and c.pid not in mine]
                pids.update(p.pid for p in found)
        return found

    def __exit__(self, *exc: object) -> None:
        import psutil

        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=15)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sampler(threading.Thread):
    """Every half second: answered requests (the mock server's count), RSS and CPU of the client's
    processes. Marks the time and memory at each tenth of the rows answered."""

    def __init__(self, mock: MockProcess, processes: Any, started: float) -> None:
        super().__init__(daemon=True)
        self.mock, self.processes, self.started = mock, processes, started
        self.samples: list[Sample] = []
        self.cpu: dict[int, float] = {}
        self.roles: dict[int, str] = {}
        self.peak: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.take()
        self.take()

    def take(self) -> None:
        import psutil

        rss: dict[str, float] = {}
        for proc in self.processes():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    self.cpu[proc.pid] = times.user + times.system
                    role = _role(proc)
                    if role != "IDLE" or proc.pid not in self.roles:
                        self.roles[proc.pid] = role  # what it last did besides waiting
                    name = f"{self.roles[proc.pid]}:{proc.pid}"
                    rss[name] = proc.memory_full_info().uss / 2**20  # private: see the docstring
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        for name, value in rss.items():
            self.peak[name] = max(self.peak.get(name, 0.0), value)
        try:
            answered = int(self.mock.stats()["successes"])
        except OSError:
            return
        self.samples.append(Sample(time.perf_counter() - self.started, answered, rss))

    def marks(self, rows: int) -> tuple[list[float], dict[str, list[float]]]:
        times: list[float] = []
        memory: dict[str, list[float]] = {}
        step = max(1, rows // MARKS)
        for k in range(step, rows + 1, step):
            first = next((s for s in self.samples if s.answered >= k), None)
            if first is None:
                break
            times.append(round(first.at_s, 2))
            for name, value in first.rss_mb.items():
                memory.setdefault(name, []).append(round(value))
        return times, memory


def _role(proc: Any) -> str:
    """What a process is: the driver, a Ray worker by its title (ray::Caller...), or a Ray daemon."""
    line = " ".join(proc.cmdline()[:3])
    if "skuforge.cli.main" in line:
        return "driver"
    title = proc.name() if not line.startswith("ray::") else line.split()[0]
    for key in (
        "Caller",
        "Coordinator",
        "KeyShard",
        "plan_batch",
        "ReadFiles",
        "IDLE",
        "raylet",
        "gcs_server",
    ):
        if key in line or key in title:
            return key
    return title[:24]


def _command(catalog: Path, out: Path, concurrency: int, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "skuforge.cli.main", "run", str(catalog), "--recipe", str(RECIPE),
        "--model", f"openai:{MODEL}", "--out", str(out), "--concurrency", str(concurrency), "--quiet", *extra,
    ]  # fmt: skip


def _env(mock: MockProcess, home: Path, **more: str) -> dict[str, str]:
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return {**os.environ, "SKUFORGE_HOME": str(home), "OPENAI_BASE_URL": mock.url, "OPENAI_API_KEY": "bench",
            "RAY_AUTH_MODE": "disabled", **more}  # fmt: skip


def measure(executor: str, catalog: Path, rows: int, work: Path, args: argparse.Namespace) -> Figures:
    """One clean run of `rows` rows on `executor`, sampled from outside."""
    figures = Figures(executor, rows)
    out = work / f"{executor}-out.csv"
    out.unlink(missing_ok=True)
    with MockProcess(capacity=args.concurrency, output_tokens=100) as mock:
        env = _env(mock, work / f"{executor}-home", SKUFORGE_RAY_BLOCK_ROWS=str(args.block_rows))
        if executor == "local":
            command = _command(catalog, out, args.concurrency, [])
            figures = _sampled(figures, command, env, mock, work, lambda: [])
        else:
            with RayHead(work / "ray-head") as head:
                extra = ["--executor", "ray", "--ray-address", head.address]
                figures = _sampled(figures, _command(catalog, out, args.concurrency, extra), env, mock, work,
                                   head.processes)  # fmt: skip
        stats = mock.stats()
    figures.requests, figures.resent_after_success = stats["requests"], stats["resent_after_success"]
    billed = stats.get("billed") or {}
    figures.tokens_in_per_request = round(billed.get("input", 0) / max(1, stats["requests"]), 1)
    figures.tokens_out_per_request = round(billed.get("output", 0) / max(1, stats["requests"]), 1)
    figures.rows_correct, figures.rows_failed = check_export(out, catalog)
    return figures


def _sampled(figures: Figures, command: list[str], env: dict[str, str], mock: MockProcess, work: Path,
             others: Any) -> Figures:  # fmt: skip
    import psutil

    driver: list[Any] = []

    def processes() -> list[Any]:
        return [*driver, *others()]

    started = time.perf_counter()
    sampler = Sampler(mock, processes, started)
    sampler.start()

    def watch() -> bool:  # called by run_child while it waits: find the driver once it exists
        if not driver:
            for child in psutil.Process().children():
                if "skuforge.cli.main" in " ".join(child.cmdline()):
                    driver.append(child)
        return False

    child = run_child(command, env, work / f"{figures.executor}.log", kill_when=watch)
    sampler.stop.set()
    sampler.join()
    if child.returncode != 0:
        figures.notes.append(f"exit {child.returncode}: {child.stdout[-800:]}")
    figures.wall_s = round(child.wall_s, 1)
    daemons = sum(v for pid, v in sampler.cpu.items() if not driver or pid != driver[0].pid)
    figures.cpu_s = round(child.cpu_s + daemons, 1)
    for pid, used in sampler.cpu.items():
        role = "driver" if driver and pid == driver[0].pid else sampler.roles.get(pid, "?")
        figures.cpu_by_role[role] = round(figures.cpu_by_role.get(role, 0.0) + used, 1)
    figures.marks_s, figures.rss_at_marks = sampler.marks(figures.rows)
    figures.peak_rss_mb = {k: round(v) for k, v in sampler.peak.items()}
    figures.peak_rss_mb["driver (wait4)"] = round(child.peak_rss_mb)
    return figures


# -- kills ---------------------------------------------------------------------------------------------------
def kills(catalog: Path, rows: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Two runs with results in the output folder (SKUFORGE_RAY_RESULTS=output, as runs over 100k rows):
    one worker actor `ray.kill`ed at 40% (the run must finish by itself), and the driver `kill -9`ed at
    50% followed by the same command again."""
    return {
        "rows": rows,
        "worker": kill_worker(catalog, rows, work, args),
        "driver": kill_driver(catalog, rows, work, args),
    }


def kill_worker(catalog: Path, rows: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The driver is `python -m bench.scale.ray_scale drive`: the job `skuforge run` makes, run in-process so
    that it owns the actor it `ray.kill`s."""
    out = work / "kill-worker.csv"
    out.unlink(missing_ok=True)
    with MockProcess(capacity=args.concurrency, output_tokens=100) as mock, RayHead(work / "ray-kw") as head:
        env = _env(mock, work / "kill-worker-home", SKUFORGE_RAY_BLOCK_ROWS=str(args.block_rows),
                   SKUFORGE_RAY_RESULTS="output")  # fmt: skip
        drive = [sys.executable, "-m", "bench.scale.ray_scale", "drive", str(catalog), str(out), head.address,
                 str(args.concurrency), str(int(rows * 0.4))]  # fmt: skip
        run = run_child(drive, env, work / "kill-worker.log")
        stats = mock.stats()
    killed = [line for line in run.stdout.splitlines() if line.startswith("worker killed")]
    correct, failed = check_export(out, catalog)
    return {
        "killed": killed[0] if killed else "no worker was killed",
        "exit": run.returncode,
        "wall_s": round(run.wall_s, 1),
        "requests": stats["requests"],
        "rows_sent_again": stats["resent_after_success"],
        "rows_correct": correct,
        "rows_failed": failed,
    }


def kill_driver(catalog: Path, rows: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = work / "kill-driver.csv"
    out.unlink(missing_ok=True)
    with MockProcess(capacity=args.concurrency, output_tokens=100) as mock, RayHead(work / "ray-kd") as head:
        env = _env(mock, work / "kill-driver-home", SKUFORGE_RAY_BLOCK_ROWS=str(args.block_rows),
                   SKUFORGE_RAY_RESULTS="output")  # fmt: skip
        command = _command(
            catalog, out, args.concurrency, ["--executor", "ray", "--ray-address", head.address]
        )
        first = run_child(command, env, work / "kill-driver-1.log",
                          kill_when=lambda: mock.stats()["successes"] >= rows * 0.5)  # fmt: skip
        before = mock.stats(detail=True)
        durable = _durable_rows(work / "kill-driver-home")
        second = run_child(command, env, work / "kill-driver-2.log")
        after = mock.stats(detail=True)
    keys = {e.row_id: e.prompt_key for e in expected(catalog)}
    was, now = before["requests_per_prompt"], after["requests_per_prompt"]
    correct, failed = check_export(out, catalog)
    return {
        "killed_at_answered": before["successes"],
        "durable_at_kill": len(durable),
        "durable_sent_again": sum(1 for r in durable if now.get(keys[r], 0) > was.get(keys[r], 0)),
        "rows_sent_again": after["resent_after_success"] - before["resent_after_success"],
        "second_exit": second.returncode,
        "wall_s": round(first.wall_s + second.wall_s, 1),
        "requests": after["requests"],
        "rows_correct": correct,
        "rows_failed": failed,
    }


def drive(argv: list[str]) -> None:
    """The first, killed run of `kills`: `skuforge run`'s job, run here; one worker ray.kill'ed at N."""
    import asyncio

    from skuforge.cli.run import start_job
    from skuforge.engine.executors import make_executor
    from skuforge.engine.spec import JobSpec
    from skuforge.store import open_store

    catalog, out, address, concurrency, kill_at = argv
    limits = {"concurrency": int(concurrency)}
    spec = JobSpec.create(Path(catalog), recipe=str(RECIPE), model=f"openai:{MODEL}", out=out, limits=limits,
                          executor="ray", ray_address=address)  # fmt: skip
    store = open_store()
    job, _ = start_job(store, spec)
    threading.Thread(target=_kill_when_answered, args=(int(kill_at),), daemon=True).start()
    asyncio.run(make_executor(store, job).run())
    from skuforge.engine.export import export_job

    export_job(store, store.get_job(job.id), Path(out))  # as `skuforge run --out` does, to check every row


def _kill_when_answered(count: int) -> None:
    import urllib.request

    import ray

    root = os.environ["OPENAI_BASE_URL"].removesuffix("/v1")
    while True:
        with urllib.request.urlopen(f"{root}/_stats", timeout=30) as resp:  # noqa: S310 - the local mock
            answered = json.loads(resp.read())["successes"]
        if answered >= count and ray.is_initialized():
            print(f"worker killed at {answered} answered: {_kill_a_caller(ray)}", flush=True)
            return
        time.sleep(0.2)


def _kill_a_caller(ray: Any) -> str:
    """ray.kill one actor of the call stage, found in Ray's actor table (this process must own it)."""
    import ray._private.state as state
    from ray._raylet import ActorID

    alive = [
        k for k, v in state.actors().items() if "Caller" in v["ActorClassName"] and v["State"] == "ALIVE"
    ]
    if not alive:
        return "none alive"
    handle = ray._private.worker.global_worker.core_worker.get_actor_handle(ActorID.from_hex(alive[0]))
    ray.kill(handle)
    return alive[0]


def _durable_rows(home: Path) -> set[str]:
    """Rows with a finished item in a part of the output folder (the kill's durable record)."""
    import pyarrow.parquet as pq

    rows: set[str] = set()
    for part in home.glob("ray/*/part-*.parquet"):
        table = pq.read_table(part, columns=["row_id", "status"])
        for row_id, status in zip(table.column("row_id").to_pylist(), table.column("status").to_pylist(),
                                  strict=True):  # fmt: skip
            if status in ("done", "flagged"):
                rows.add(row_id)
    return rows


def check_export(out: Path, catalog: Path, every: int = 500) -> tuple[int, int]:
    """(rows exported done, of them wrong or repeated + rows not done): every `every`-th row's answer is
    compared with what the mock answers for its request."""
    import csv

    answers = {e.row_id: json.loads(e.answer)["tagline"] for e in expected(catalog, every)}
    done = bad = 0
    seen: set[str] = set()
    if not out.exists():
        return 0, -1
    with out.open(encoding="utf-8-sig", newline="") as f:
        for rec in csv.DictReader(f):
            sku = rec["sku"]
            repeated = sku in seen
            seen.add(sku)
            wrong = sku in answers and rec[COLUMN] != answers[sku]
            if rec["skuforge_status"] == "done" and not repeated and not wrong:
                done += 1
            else:
                bad += 1
    return done, bad


# -- the table -----------------------------------------------------------------------------------------------
def table(results: list[Figures]) -> str:
    head = f"{'executor':<8} {'rows':>9} {'wall s':>7} {'CPU s':>7} {'CPU ms/row':>10} {'wall ms/row':>11}"
    lines = [f"{head}  s per tenth of the rows"]
    for f in results:
        per = f.per_step_s
        wall_ms = f.marks_s[-1] / f.rows * 1000 if f.marks_s else float("nan")  # to the last answer
        cpu_ms = f.cpu_s / f.rows * 1000
        lines.append(f"{f.executor:<8} {f.rows:>9,} {f.wall_s:>7.1f} {f.cpu_s:>7.1f} {cpu_ms:>10.3f} "
                     f"{wall_ms:>11.3f}  " + " ".join(f"{s:.0f}" for s in per))  # fmt: skip
    lines.append("\nprivate memory (USS, MB) at each tenth of the rows answered, per process:")
    for f in results:
        for name, values in sorted(f.rss_at_marks.items()):
            shown = " ".join(str(int(v)) for v in values)
            lines.append(f"  {f.executor:<6} {name:<28} {shown}  peak {f.peak_rss_mb.get(name, 0)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    if argv and argv[0] == "drive":
        drive(argv[1:])
        return
    p = argparse.ArgumentParser(prog="python -m bench ray", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--kill-rows", type=int, default=100_000)
    p.add_argument("--only", default="local,ray,kills")
    p.add_argument("--concurrency", type=int, default=512)
    p.add_argument("--block-rows", type=int, default=512)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/skuforge-bench-ray"))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    wanted = args.only.split(",")
    print(f"load average before: {os.getloadavg()}", flush=True)
    results: list[Figures] = []
    catalog = args.workdir / f"catalog-{args.rows}.csv"
    if not catalog.exists():
        write_catalog(catalog, args.rows)
    for executor in ("local", "ray"):
        if executor in wanted:
            results.append(measure(executor, catalog, args.rows, args.workdir, args))
            print(json.dumps(asdict(results[-1])), flush=True)
    report: dict[str, Any] = {"runs": [asdict(r) for r in results], "load_after": os.getloadavg()}
    if "kills" in wanted:
        small = args.workdir / f"catalog-{args.kill_rows}.csv"
        if not small.exists():
            write_catalog(small, args.kill_rows)
        report["kills"] = kills(small, args.kill_rows, args.workdir, args)
        print(json.dumps(report["kills"]), flush=True)
    print("\n" + table(results))
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
