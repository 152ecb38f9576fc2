"""How fast the local model reads a prompt and writes tokens with 1, 2, ... threads, idle and under load.

    python bench/bench_local_threads.py [--model qwen2.5-0.5b] [--threads 1,2] [--busy 0,2] [--tokens 400]

For each number of busy processes (`--busy`: that many pure-Python spinning processes are started to load
the machine, 0 = as it is) and each thread count, the model (loaded once, threads switched with
llama_set_n_threads) evaluates a `--tokens` prompt from scratch and then decodes 48 tokens one by one.
It prints tokens per second (wall), the load average and the busy cores measured now. `choose_threads`
(skuforge.providers.local) picks every physical core on an idle machine and one fewer per core that other
processes keep busy (measured over 0.3 s, `busy_cores`): this bench is how to check that rule on a machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time


def spin() -> None:
    while True:
        pass


def measure(llama: object, tokens: list[int], threads: int) -> tuple[float, float]:
    llama._ctx.set_n_threads(threads, threads)  # type: ignore[attr-defined]
    llama.reset()  # type: ignore[attr-defined]
    started = time.perf_counter()
    llama.eval(tokens)  # type: ignore[attr-defined]
    prompt = len(tokens) / (time.perf_counter() - started)
    started = time.perf_counter()
    for token in tokens[:48]:
        llama.eval([token])  # type: ignore[attr-defined]
    decode = 48 / (time.perf_counter() - started)
    return prompt, decode


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="qwen2.5-0.5b")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--busy", default="0")
    parser.add_argument("--tokens", type=int, default=400)
    args = parser.parse_args()
    from skuforge.providers.local import busy_cores, choose_threads, physical_cores, shared_model

    model = shared_model(args.model)
    text = "Extract product attributes from the product data, copying each value exactly as written. " * 60
    tokens = list(model.llama.tokenize(text.encode(), add_bos=False, special=False))[: args.tokens]
    print(f"physical cores {physical_cores()}, model {args.model}, prompt {len(tokens)} tokens")
    print("busy  threads  prompt tok/s  decode tok/s  load(1m) at end  busy_cores()  choose_threads()")
    for busy in (int(b) for b in args.busy.split(",")):
        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(busy)]
        for process in spinners:
            process.start()
        time.sleep(2 if busy else 0)
        for threads in (int(t) for t in args.threads.split(",")):
            measure(model.llama, tokens[:32], threads)  # warm up
            prompt, decode = measure(model.llama, tokens, threads)
            load, now = os.getloadavg()[0], busy_cores()
            rule = choose_threads(now)
            rates = f"{busy:4d}  {threads:7d}  {prompt:12.1f}  {decode:12.1f}"
            print(f"{rates}  {load:15.2f}  {now:12.2f}  {rule:16d}")
        for process in spinners:
            process.terminate()


if __name__ == "__main__":
    main()
