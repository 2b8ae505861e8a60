"""The load generator: a separate process (no Django) that drives gunicorn over HTTP on 127.0.0.1.

Reads one JSON job from stdin, prints one JSON result to stdout. Three modes:
- "get": `requests` GETs of `path` (or of `paths`, in turn) spread over `threads` keep-alive
  connections, with optional `headers` (e.g. a session cookie): the ceiling, and the search pages.
  With `posts` (a list of [path, JSON body, headers]) it POSTs them in turn instead, and counts the
  answers with status `expect` as the good ones (the refused bookings of the storm).
- "book": `threads` concurrent desk systems book slots for patients through `POST /api/v1/bookings`.
  Every patient keeps trying slots not yet known to be taken until one booking succeeds or no slot is
  left, so threads race for the same slots (a 409 is the expected answer to a lost race). With
  `"uncontended": true` the i-th patient books the i-th slot, once: no two requests name the same
  slot, so there is no lost race and every request is a booking (the booking's own cost).
- "tokens": one OAuth access token per facility system, for "book" (fetched apart, because the
  client secret check is a deliberately slow hash that is no part of a booking's cost).

Only the standard library: http.client with one persistent connection per thread.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from typing import Any


def _connect(host: str, port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(host, port, timeout=60)


def _request(
    conn_box: list[http.client.HTTPConnection],
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request on the thread's keep-alive connection; reconnects once if the server closed it."""
    for attempt in (1, 2):
        try:
            conn_box[0].request(method, path, body=body, headers=headers or {})
            response = conn_box[0].getresponse()
            data = response.read()
            if response.getheader("Connection", "").lower() == "close":
                conn_box[0].close()
                conn_box[0] = _connect(host, port)
            return response.status, data
        except (http.client.HTTPException, ConnectionError, OSError):
            conn_box[0].close()
            conn_box[0] = _connect(host, port)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def token_fetch(host: str, port: int, client_id: str, client_secret: str, scope: str) -> str:
    conn = [_connect(host, port)]
    auth = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": scope}).encode()
    status, data = _request(
        conn,
        host,
        port,
        "POST",
        "/api/v1/oauth/token/",
        body,
        {"Authorization": f"Basic {auth}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    conn[0].close()
    if status != 200:
        raise SystemExit(f"token endpoint answered {status}: {data[:200]!r}")
    return str(json.loads(data)["access_token"])


def run_get(job: dict[str, Any]) -> dict[str, Any]:
    host, port, threads, total = job["host"], job["port"], job["threads"], job["requests"]
    paths: list[str] = job.get("paths") or [job.get("path", "/")]
    headers: dict[str, str] = job.get("headers") or {}
    posts: list[list[Any]] = job.get("posts") or []
    expect = int(job.get("expect", 200))
    warmup = int(job.get("warmup", 0))
    counter = iter(range(-warmup, total))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    sizes: Counter[int] = Counter()

    def worker() -> None:
        conn = [_connect(host, port)]
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            began = time.perf_counter()
            try:
                if posts:
                    path, data, post_headers = posts[n % len(posts)]
                    if post_headers.get("Idempotency-Key") == "*":  # a new key for every request
                        post_headers = {**post_headers, "Idempotency-Key": str(uuid.uuid4())}
                    status, body = _request(
                        conn, host, port, "POST", path, json.dumps(data).encode(), post_headers
                    )
                else:
                    status, body = _request(conn, host, port, "GET", paths[n % len(paths)], None, headers)
            except OSError:
                status, body = 0, b""
            took = time.perf_counter() - began
            if n < 0:
                continue  # warm-up requests (first connection, caches) are not counted
            with lock:
                statuses[status] += 1
                latencies.append(took)
                sizes[len(body)] += 1
        conn[0].close()

    began = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - began
    return {
        "wall_s": wall,
        "statuses": dict(statuses),
        "latencies": latencies,
        "ok": statuses.get(expect, 0),
        "body_bytes": dict(sizes.most_common(3)),
    }


def run_tokens(job: dict[str, Any]) -> dict[str, Any]:
    """One access token per facility system (client credentials: a deliberately slow secret hash)."""
    host, port = job["host"], job["port"]
    return {
        "tokens": {
            fac: token_fetch(host, port, c["client_id"], c["client_secret"], "bookings:write")
            for fac, c in job["clients"].items()
        }
    }


def run_book(job: dict[str, Any]) -> dict[str, Any]:
    host, port, threads = job["host"], job["port"], job["threads"]
    tokens: dict[str, str] = job["tokens"] if "tokens" in job else run_tokens(job)["tokens"]
    slots: list[tuple[int, str]] = [(int(s), str(f)) for s, f in job["slots"]]  # (slot_id, facility key)
    patients: list[str] = list(job["patients"])
    uncontended = bool(job.get("uncontended"))
    if uncontended:  # the i-th patient books the i-th slot, once; patients without a slot stay home
        own = dict(zip(patients, slots, strict=False))
        patients = patients[: len(slots)]
    lock = threading.Lock()
    taken: set[int] = set()
    rng = random.Random(job.get("seed", 1))
    latencies: list[float] = []  # successful bookings
    all_latencies: list[float] = []
    statuses: Counter[str] = Counter()
    booked: list[tuple[int, str]] = []
    patient_iter = iter(patients)

    def pick(pesel: str) -> tuple[int, str] | None:
        if uncontended:
            return None if own[pesel][0] in taken else own[pesel]
        free = [s for s in slots if s[0] not in taken]
        return rng.choice(free) if free else None

    def worker() -> None:
        conn = [_connect(host, port)]
        while True:
            with lock:
                pesel = next(patient_iter, None)
            if pesel is None:
                break
            while True:
                with lock:
                    choice = pick(pesel)
                if choice is None:
                    break
                slot_id, fac = choice
                body = json.dumps({"slot_id": slot_id, "pesel": pesel, "channel": "desk"}).encode()
                headers = {
                    "Authorization": f"Bearer {tokens[fac]}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": str(uuid.uuid4()),
                }
                began = time.perf_counter()
                try:
                    status, data = _request(conn, host, port, "POST", "/api/v1/bookings", body, headers)
                except OSError:
                    status, data = 0, b""
                took = time.perf_counter() - began
                code = ""
                if status >= 400:
                    try:
                        code = str(json.loads(data).get("code", ""))
                    except ValueError:
                        code = "unparseable"
                with lock:
                    all_latencies.append(took)
                    statuses[f"{status} {code}".strip()] += 1
                    if status == 201:
                        taken.add(slot_id)
                        latencies.append(took)
                        booked.append((slot_id, pesel[-4:]))
                    elif status == 409:
                        taken.add(slot_id)  # lost the race: someone else has it
                if status == 201:
                    break
                if status != 409:
                    break  # an error: this patient gives up (counted)
        conn[0].close()

    began = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - began
    return {
        "wall_s": wall,
        "statuses": dict(statuses),
        "latencies": latencies,
        "all_latencies": all_latencies,
        "booked": len(booked),
    }


def main() -> None:
    job = json.loads(sys.stdin.read())
    result = {"get": run_get, "book": run_book, "tokens": run_tokens}[job["mode"]](job)
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
