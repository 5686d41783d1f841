#!/usr/bin/env python3
"""The request loop of the original Syphus runner, for the syphus benchmark (benches/syphus.rs).

The original (Luodian/Otter mimic-it/syphus/main.py) cuts the queries into batches of
`num_threads`, submits one batch to a fresh ThreadPoolExecutor and waits for all of its
results before the next batch starts. This script does the same with the standard library
(urllib instead of the openai package), one POST /chat/completions per query with the same body
layout, and prints one JSON object: {"requests", "answered", "seconds", "rps"}.

usage: syphus_batch.py --endpoint http://127.0.0.1:PORT/v1 --queries Q.json [--threads 32]
"""
import argparse
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def task(endpoint, query):
    body = {
        "model": "bench-model",
        "messages": [
            {"role": "system", "content": "system"},
            {"role": "user", "content": query["sentences"]},
        ],
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 3200,
    }
    req = urllib.request.Request(
        endpoint.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer bench-key"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            reply = json.loads(r.read())
        return {"id": query["id"], "results": reply["choices"][0]["message"]["content"]}
    except Exception as e:  # the original keeps the error message and goes on
        return {"error_message": str(e)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--threads", type=int, default=32)
    args = ap.parse_args()
    with open(args.queries) as f:
        dataset = json.load(f)
    results = []
    start = time.time()
    batch_size = args.threads
    for i in range(0, len(dataset), batch_size):
        with ThreadPoolExecutor(max_workers=args.threads) as executor:
            batch = dataset[i : i + batch_size]
            futures = [executor.submit(task, args.endpoint, d) for d in batch]
            for future in futures:
                results.append(future.result())
    seconds = time.time() - start
    answered = sum(1 for r in results if "results" in r)
    print(json.dumps({"requests": len(results), "answered": answered,
                      "seconds": round(seconds, 3), "rps": round(len(results) / seconds, 2)}))


if __name__ == "__main__":
    main()
