"""The reference client: the vendor SDK (`openai.AsyncOpenAI`) and a semaphore, nothing else.

    python -m bench.scale.reference BODIES.jsonl RESULTS.jsonl --concurrency 128 --timeout 10

Reads pre-rendered request bodies (rendering is not counted against it), sends each with the SDK's own
retries, and appends {"row_id", "text"} or {"row_id", "error"} per row. It has no store: a rerun sends all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


async def _main(args: argparse.Namespace) -> None:
    import httpx
    from openai import AsyncOpenAI

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    client = AsyncOpenAI(
        base_url=args.base_url,
        api_key="bench",
        timeout=args.timeout,
        max_retries=args.max_retries,
        http_client=httpx.AsyncClient(limits=limits, timeout=args.timeout),
    )
    gate = asyncio.Semaphore(args.concurrency)
    started = time.perf_counter()
    with open(args.bodies, encoding="utf-8") as src, open(args.results, "a", encoding="utf-8") as out:

        async def one(row_id: str, body: dict) -> None:  # type: ignore[type-arg]
            try:
                resp = await client.chat.completions.create(**body)
                line = {"row_id": row_id, "text": resp.choices[0].message.content}
            except Exception as exc:  # noqa: BLE001 - a failed row is recorded, not raised
                line = {"row_id": row_id, "error": f"{type(exc).__name__}: {exc}"[:200]}
            out.write(json.dumps(line) + "\n")
            out.flush()

        async def guarded(row_id: str, body: dict) -> None:  # type: ignore[type-arg]
            try:
                await one(row_id, body)
            finally:
                gate.release()

        tasks = set()
        for raw in src:
            item = json.loads(raw)
            await gate.acquire()
            task = asyncio.create_task(guarded(item["row_id"], item["body"]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    print(json.dumps({"elapsed_s": time.perf_counter() - started}), flush=True)
    await client.close()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.scale.reference")
    p.add_argument("bodies")
    p.add_argument("results")
    p.add_argument("--base-url", required=True)
    p.add_argument("--concurrency", type=int, default=128)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--max-retries", type=int, default=10)
    asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    main()
