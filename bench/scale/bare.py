"""The bare reference client: aiohttp + orjson and a semaphore, retrying faults, nothing else.

    python -m bench.scale.bare BODIES.jsonl RESULTS.jsonl --base-url URL --concurrency 128 --timeout 10

Reads pre-rendered request bodies (rendering is not counted against it), posts each with one pooled
aiohttp session, retries 429/5xx, dropped connections and timeouts with full-jitter backoff, and appends
{"row_id", "text"} or {"row_id", "error"} per row as each answer arrives. No store, no checks, no export:
the floor a full engine is measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import aiohttp
import orjson


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, timeout: float, retries: int) -> str:
    for attempt in range(retries + 1):
        try:
            async with asyncio.timeout(timeout):
                async with session.post(url, data=body) as resp:
                    raw = await resp.read()
                    if resp.status == 200:
                        return str(orjson.loads(raw)["choices"][0]["message"]["content"])
                    if resp.status < 500 and resp.status != 429:
                        raise RuntimeError(f"HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, KeyError):
            if attempt == retries:
                raise
        await asyncio.sleep(random.random() * min(30.0, 0.5 * 2**attempt))
    raise RuntimeError("gave up")


async def _main(args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    gate = asyncio.Semaphore(args.concurrency)
    url = args.base_url.rstrip("/") + "/chat/completions"
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        with open(args.bodies, "rb") as src, open(args.results, "ab") as out:

            async def one(row_id: str, body: bytes) -> None:
                try:
                    line = {"row_id": row_id, "text": await _post(session, url, body, args.timeout, 10)}
                except Exception as exc:  # noqa: BLE001 - a failed row is recorded, not raised
                    line = {"row_id": row_id, "error": f"{type(exc).__name__}: {exc}"[:200]}
                finally:
                    gate.release()
                out.write(orjson.dumps(line) + b"\n")
                out.flush()

            tasks = set()
            for raw in src:
                item = orjson.loads(raw)
                await gate.acquire()
                task = asyncio.create_task(one(item["row_id"], orjson.dumps(item["body"])))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
    print(orjson.dumps({"elapsed_s": time.perf_counter() - started}).decode(), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.scale.bare")
    p.add_argument("bodies")
    p.add_argument("results")
    p.add_argument("--base-url", required=True)
    p.add_argument("--concurrency", type=int, default=128)
    p.add_argument("--timeout", type=float, default=10.0)
    asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    main()
