"""Times acks from a process of its own: the stand-ins share the benchmark's process, and rendering 4K
images there would otherwise delay the very requests being timed.

Reads ``{"bursts": [{"url": …, "requests": [{"body": …, "headers": {…}}, …]}, …]}`` on stdin, sends each
burst's requests to its URL at once (one burst after another), and prints ``[[status, seconds], …]`` in
sending order.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import httpx


def main() -> None:
    job = json.load(sys.stdin)
    most = max((len(b["requests"]) for b in job["bursts"]), default=1)
    limits = httpx.Limits(max_connections=most, max_keepalive_connections=most)
    with httpx.Client(limits=limits, timeout=30.0) as http, ThreadPoolExecutor(max_workers=most) as pool:

        def send(url: str, request: dict[str, Any]) -> tuple[int, float]:
            start = time.perf_counter()
            try:
                answer = http.post(url, content=request["body"].encode(), headers=request["headers"])
                status = answer.status_code
            except httpx.HTTPError:
                status = 0
            return status, time.perf_counter() - start

        results = [
            result
            for burst in job["bursts"]
            for result in pool.map(partial(send, burst["url"]), burst["requests"])
        ]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
