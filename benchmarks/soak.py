"""Soak test of the study server: gunicorn -w 4 on PostgreSQL with Redis limits, for minutes.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--clients 16] [--procs 2]
        [--think-ms 0] [--workers 4] [--db URL] [--limits-storage redis://127.0.0.1:6379]
        [--maps DIR] [--max-rss-growth 10] [--out docs/results/soak.json]

Simulated participants (``--clients`` threads over ``--procs`` load-generator processes,
one connection per request as in ``benchmarks/load.py``) take whole surveys through the
real routes, one after another, until the time is up: the MTurk entry link, consent,
start, then for every item its page, its option images and the answer (whose reply is the
next page), and the completion page.  Nothing is a reference endpoint.

Reported, per minute: requests and votes per second, p50/p99 latency of all requests and
of votes, HTTP errors, and each gunicorn worker's resident memory (RSS, the median of the
samples taken every ``--sample-seconds`` from /proc).  At the end the database is read:
every vote acknowledged by HTTP (a 200 to its answer) must be stored, once, with the
acknowledged choice.

Verdicts (the exit status is 1 when one fails, 77 when gunicorn cannot start):

* integrity: 0 lost, 0 duplicated, 0 stored with another choice;
* errors: no request answered other than expected (a 5xx, a refused connection...);
* memory: no worker grows.  Rule: per worker, the median RSS of the last 5 minutes is
  within ``--max-rss-growth`` % (default 10) of its median over minutes 2-6 (minute 1 is
  warm-up: templates, PNG caches, the connection pool).  A run of B < 11 minutes compares
  the first k = (B - 1) // 2 minutes after the first with the last k (no verdict under 3
  minutes).  A worker that gunicorn replaced during the run fails the verdict too.

Without ``--db`` a fresh database ``normlime_bench_<random>`` is created on the local
PostgreSQL server and dropped afterwards.  The limits are raised (simulated participants
answer in milliseconds) but every request is still counted in Redis.  The gunicorn set-up,
the database and the HTTP client are ``benchmarks/load.py``'s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load  # noqa: E402  (benchmarks/load.py: gunicorn, database, HTTP client)

REPO = load.REPO
IMG_RE = re.compile(rb'<img src="(/p/[^"]+)"')
SUBMIT_TO = "https://workersandbox.mturk.com"
SKIP = 77  # gunicorn did not start (the smoke test skips)


# ----------------------------------------------------------------------------- participants


class Survey(Exception):
    """A request of the survey went wrong: (request kind, status or what, [already counted])."""


class Recorder:
    """Per-bucket latencies and counts of one load-generator process."""

    def __init__(self, t0: float, bucket_s: float):
        self.t0, self.bucket_s = t0, bucket_s
        self.lat: dict[int, list[float]] = defaultdict(list)
        self.vote_lat: dict[int, list[float]] = defaultdict(list)
        self.errors: dict[int, int] = Counter()
        self.statuses: Counter = Counter()
        self.lock = threading.Lock()

    def timed(self, client, kind: str, method: str, path: str, form=None):
        t = time.perf_counter()
        try:
            status, hdrs, body = client.request(method, path, form)
        except (OSError, ValueError) as exc:  # refused, reset, timed out, no response
            self.error(f"{kind}: {type(exc).__name__}")
            raise Survey(kind, type(exc).__name__, True) from None
        took = time.perf_counter() - t
        bucket = int((time.time() - self.t0) // self.bucket_s)
        with self.lock:
            self.lat[bucket].append(took)
            if kind == "answer":
                self.vote_lat[bucket].append(took)
            self.statuses[f"{kind} {status}"] += 1
        return status, hdrs, body

    def error(self, what: str) -> None:
        bucket = int((time.time() - self.t0) // self.bucket_s)
        with self.lock:
            self.errors[bucket] += 1
            self.statuses[f"ERROR {what}"] += 1


def expect(status: int, wanted: int, kind: str) -> None:
    if status != wanted:
        raise Survey(kind, status)


def one_survey(client, rec: Recorder, key: str, worker: str, rng, think: float, deadline: float,
               state: dict) -> None:  # fmt: skip
    """Take one survey, noting in ``state`` the token, the votes acknowledged (question,
    choice) and whether the completion page was reached; raises Survey on a wrong answer."""

    def pause():
        if think:
            time.sleep(rng.uniform(0.5, 1.5) * think)

    query = urlencode(
        {
            "workerId": worker,
            "assignmentId": f"{worker}A",
            "hitId": "SOAK",
            "turkSubmitTo": SUBMIT_TO,
        }
    )
    status, _, body = rec.timed(client, "entry", "GET", f"/s/{key}/mturk?{query}")
    expect(status, 200, "entry")
    form = {**load.fields(body), "agree": "yes"}
    status, hdrs, _ = rec.timed(client, "consent", "POST", f"/s/{key}/mturk/consent", form)
    expect(status, 303, "consent")
    home = urlsplit(hdrs.get("location", "")).path
    state["token"] = home.rsplit("/", 1)[-1]
    status, _, _ = rec.timed(client, "start", "POST", home + "/start")
    expect(status, 303, "start")
    status, _, body = rec.timed(client, "page", "GET", home)
    expect(status, 200, "page")
    while (form := load.fields(body)).get("q"):  # an item page (else the completion page)
        for src in IMG_RE.findall(body):
            status, _, png = rec.timed(client, "image", "GET", src.decode())
            expect(status, 200, "image")
            if not png.startswith(b"\x89PNG"):
                raise Survey("image", "not a PNG")
        if time.time() >= deadline:
            return  # time is up: this participant stops mid-survey
        pause()
        q, choice = int(form["q"]), rng.randint(1, 4)
        status, _, body = rec.timed(
            client, "answer", "POST", home + "/answer", {**form, "c": choice}
        )
        expect(status, 200, "answer")
        state["acked"].append((q, choice))
        nxt = load.fields(body).get("q")
        if nxt is not None and int(nxt) != q + 1:
            raise Survey("answer", f"next page is question {nxt} after {q}")
    status, _, body = rec.timed(client, "completion", "GET", home)
    expect(status, 200, "completion")
    if b"Thank you" not in body:
        raise Survey("completion", "no completion page")
    state["done"] = True


def load_process(args) -> dict:
    """One load-generator process: ``n`` threads taking surveys until ``deadline``."""
    host, port, key, n, proc, t0, deadline, bucket_s, think, seed = args
    rec = Recorder(t0, bucket_s)
    results = []  # (token, acked, completed)
    failures: list[str] = []
    lock = threading.Lock()

    def participant_loop(i: int) -> None:
        rng = random.Random(seed * 1000 + proc * 100 + i)
        client = load.Client(host, port)
        k = 0
        while time.time() < deadline:
            k += 1
            worker = f"SOAK{seed}-{proc}-{i}-{k}"
            state = {"token": None, "acked": [], "done": False}
            try:
                one_survey(client, rec, key, worker, rng, think, deadline, state)
            except Survey as exc:
                kind, what, *counted = exc.args
                if not counted:
                    rec.error(f"{kind}: {what}")
                with lock:
                    if len(failures) < 20:
                        failures.append(f"{worker}: {kind} -> {what}")
            if state["token"]:  # the votes acknowledged before an error are checked too
                with lock:
                    results.append((state["token"], state["acked"], state["done"]))

    threads = [threading.Thread(target=participant_loop, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "lat": dict(rec.lat),
        "vote_lat": dict(rec.vote_lat),
        "errors": dict(rec.errors),
        "statuses": dict(rec.statuses),
        "results": results,
        "failures": failures,
    }


# ----------------------------------------------------------------------------- memory


def rss_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


class Sampler(threading.Thread):
    """Every ``every`` seconds: each gunicorn worker's RSS (and the master's)."""

    def __init__(self, master: int, t0: float, every: float, on_bucket=None, bucket_s=60.0):
        super().__init__(daemon=True)
        self.master, self.t0, self.every = master, t0, every
        self.samples: list[tuple[float, int, int]] = []  # (seconds, pid, rss kB)
        self.master_samples: list[tuple[float, int]] = []
        self.seen_workers: set[int] = set()
        self.stop = threading.Event()
        self.on_bucket, self.bucket_s = on_bucket, bucket_s

    def run(self) -> None:
        last_bucket = 0
        while not self.stop.is_set():
            now = time.time() - self.t0
            for pid in load._children(self.master):
                kb = rss_kb(pid)
                if kb is not None:
                    self.samples.append((now, pid, kb))
                    self.seen_workers.add(pid)
            kb = rss_kb(self.master)
            if kb is not None:
                self.master_samples.append((now, kb))
            bucket = int(now // self.bucket_s)
            if self.on_bucket and bucket > last_bucket:
                self.on_bucket(bucket, self)
                last_bucket = bucket
            self.stop.wait(self.every)


def memory_verdict(per_bucket: dict[int, dict[int, float]], workers: set[int], n_buckets: int,
                   max_growth_pct: float, replaced: bool) -> dict:  # fmt: skip
    """The rule in the module docstring, on per-bucket median RSS (MB) per worker."""
    if n_buckets >= 11:
        k = 5
    elif n_buckets >= 3:
        k = (n_buckets - 1) // 2
    else:
        return {"verdict": "insufficient", "reason": f"{n_buckets} buckets (3 needed)"}
    base_b = list(range(1, 1 + k))  # 0-based: bucket 0 is the warm-up minute
    final_b = list(range(n_buckets - k, n_buckets))
    per_worker, ok, sampled = {}, not replaced, True
    for pid in sorted(workers):
        base = [per_bucket[b][pid] for b in base_b if pid in per_bucket.get(b, {})]
        final = [per_bucket[b][pid] for b in final_b if pid in per_bucket.get(b, {})]
        if not base or not final:
            per_worker[str(pid)] = {"note": "no RSS sample in a window"}
            sampled = False
            continue
        b, f = statistics.median(base), statistics.median(final)
        growth = (f / b - 1) * 100
        per_worker[str(pid)] = {
            "baseline_mb": round(b, 1),
            "final_mb": round(f, 1),
            "growth_pct": round(growth, 2),
        }
        ok = ok and growth <= max_growth_pct
    return {
        "verdict": "grows" if not ok else "pass" if sampled else "insufficient",
        "baseline_buckets": [b + 1 for b in base_b],
        "final_buckets": [b + 1 for b in final_b],
        "max_growth_pct": max_growth_pct,
        "workers_replaced": replaced,
        "per_worker": per_worker,
    }


# ----------------------------------------------------------------------------- integrity


def verify(engine, results) -> dict:
    """Acknowledged votes against the database (load.verify's rule, per participant)."""
    from sqlalchemy import text

    acked = {(tok, q): c for tok, votes, _ in results for q, c in votes}
    tokens = {tok for tok, _, _ in results}
    done_client = {tok for tok, _, done in results if done}
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.token, r.position, r.choice FROM responses r "
                "JOIN participants p ON p.id = r.participant_id"
            )
        ).all()
        done_db = {
            r[0]
            for r in conn.execute(
                text("SELECT token FROM participants WHERE completed_at IS NOT NULL")
            )
        }
        n_participants = conn.execute(text("SELECT count(*) FROM participants")).scalar_one()
    keys = Counter((r[0], r[1]) for r in rows)
    stored = {(r[0], r[1]): r[2] for r in rows}
    return {
        "acknowledged": len(acked),
        "stored": len(rows),
        "lost": sum(1 for k in acked if k not in stored),
        "duplicated": sum(n - 1 for n in keys.values() if n > 1),
        "other_choice": sum(1 for k, c in acked.items() if k in stored and stored[k] != c),
        # the votes of participants whose survey ended in an error are not claimed
        "stored_not_acknowledged": sum(1 for k in stored if k[0] in tokens and k not in acked),
        "participants": n_participants,
        "completed_seen_by_clients": len(done_client),
        "completed_in_database": len(done_db & tokens),
        "completed_mismatch": len(done_client ^ (done_db & tokens)),
    }


# ----------------------------------------------------------------------------- main


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(p * len(s)))] * 1000, 1)


def merge(parts: list[dict]) -> dict:
    out = {"lat": defaultdict(list), "vote_lat": defaultdict(list), "errors": Counter()}
    out["statuses"], out["results"], out["failures"] = Counter(), [], []
    for part in parts:
        for key in ("lat", "vote_lat"):
            for b, xs in part[key].items():
                out[key][b].extend(xs)
        out["errors"].update(part["errors"])
        out["statuses"].update(part["statuses"])
        out["results"] += part["results"]
        out["failures"] += part["failures"]
    return out


def run_load(args, url: str, duration: float, bucket_s: float, procs: int, label: str):
    """Database, gunicorn, the participants and the RSS sampler; None if gunicorn failed."""
    host = "127.0.0.1"
    shares = [len(part) for part in load.split(list(range(args.clients)), procs)]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        key, engine = load.prepare_db(url)
        stack.callback(engine.dispose)
        maps = load.maps_dir(args.maps, Path(tmp))
        port = load.free_port()
        try:
            cmd, master = stack.enter_context(
                load.gunicorn(url, maps, port, args.workers, 1, args.pool, args.limits_storage)
            )
        except SystemExit as exc:  # load.gunicorn: "gunicorn did not start"
            print(f"soak: {exc}", file=sys.stderr)
            return None
        workers_at_start = set(load._children(master))

        def progress(bucket: int, sampler: Sampler) -> None:
            from sqlalchemy import text

            with engine.connect() as conn:
                votes = conn.execute(text("SELECT count(*) FROM responses")).scalar_one()
            latest = {pid: kb for _, pid, kb in sampler.samples}
            rss = ", ".join(f"{kb / 1024:.0f}" for _, kb in sorted(latest.items()))
            print(f"  {label} {bucket}: {votes} votes stored; worker RSS MB {rss}", flush=True)

        with ProcessPoolExecutor(procs) as pool:
            t0 = time.time()
            futures = [
                pool.submit(
                    load_process,
                    (
                        host,
                        port,
                        key,
                        n,
                        i,
                        t0,
                        t0 + duration,
                        bucket_s,
                        args.think_ms / 1000,
                        args.seed,
                    ),
                )  # fmt: skip
                for i, n in enumerate(shares)
            ]
            # at least 4 samples per bucket (short buckets are the smoke test's)
            every = min(args.sample_seconds, bucket_s / 4)
            sampler = Sampler(master, t0, every, progress, bucket_s)
            sampler.start()
            parts = [f.result() for f in futures]
            sampler.stop.set()
            sampler.join()
        elapsed = time.time() - t0
        replaced = (
            set(load._children(master)) != workers_at_start
            or sampler.seen_workers != workers_at_start
        )
        stack.close()  # gunicorn stopped before the database is read
        run = merge(parts)
        run.update(
            integrity=verify(engine, run["results"]),
            elapsed=elapsed,
            gunicorn=" ".join(cmd[1:]),
            workers=workers_at_start,
            replaced=replaced,
            sampler=sampler,
        )
        return run


def bucket_rows(run: dict, n_buckets: int, bucket_s: float, duration: float, label: str):
    """Per bucket: throughput, latency percentiles, errors and each worker's median RSS."""
    rss: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for sec, pid, kb in run["sampler"].samples:
        rss[min(int(sec // bucket_s), n_buckets - 1)][pid].append(kb)
    rss_mb = {
        b: {pid: statistics.median(kbs) / 1024 for pid, kbs in per.items()}
        for b, per in rss.items()
    }
    master: dict[int, list[int]] = defaultdict(list)
    for sec, kb in run["sampler"].master_samples:
        master[min(int(sec // bucket_s), n_buckets - 1)].append(kb)
    # a request that ends just after the deadline belongs to the last bucket
    last = n_buckets - 1
    for key in ("lat", "vote_lat", "errors"):
        for b in [b for b in run[key] if b > last]:
            run[key][last] += run[key].pop(b)
    rows = []
    for b in range(n_buckets):
        lat, votes = run["lat"].get(b, []), run["vote_lat"].get(b, [])
        span = max(min(bucket_s, duration - b * bucket_s), 1e-9)
        rows.append(
            {
                label: b + 1,
                "requests": len(lat),
                "requests_per_s": round(len(lat) / span, 1),
                "votes": len(votes),
                "votes_per_s": round(len(votes) / span, 1),
                "p50_ms": pct(lat, 0.50),
                "p99_ms": pct(lat, 0.99),
                "vote_p50_ms": pct(votes, 0.50),
                "vote_p99_ms": pct(votes, 0.99),
                "errors": run["errors"].get(b, 0),
                "worker_rss_mb": {
                    str(pid): round(mb, 1) for pid, mb in sorted(rss_mb.get(b, {}).items())
                },
                "master_rss_mb": round(statistics.median(master[b]) / 1024, 1)
                if master.get(b)
                else None,
            }
        )
    return rows, rss_mb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=16, help="simulated participants at once")
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--think-ms", type=float, default=0.0, help="mean pause before each vote")
    ap.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    ap.add_argument("--pool", type=int, default=2, help="DB connections per worker process")
    ap.add_argument("--db", default=None, help="default: a fresh local PostgreSQL database")
    ap.add_argument("--limits-storage", default="redis://127.0.0.1:6379")
    ap.add_argument("--maps", default=None, help="default: the shipped bundle")
    ap.add_argument("--max-rss-growth", type=float, default=10.0, help="percent (the rule above)")
    ap.add_argument("--sample-seconds", type=float, default=5.0, help="RSS sampling period")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "soak.json"))
    # for tests/test_soak_smoke.py: a run of seconds, in buckets of seconds
    ap.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--bucket-seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    duration = args.seconds if args.seconds is not None else args.minutes * 60
    bucket_s = args.bucket_seconds
    label = "minute" if bucket_s == 60 else "bucket"
    n_buckets = max(1, math.ceil(duration / bucket_s - 1e-9))
    procs = max(1, min(args.procs, args.clients))
    print(
        f"soak: {duration:g} s, {args.clients} participants at once in {procs} processes, "
        f"gunicorn -w {args.workers}, limits {args.limits_storage or 'memory://'}",
        flush=True,
    )
    with load.database(args.db) as url:
        run = run_load(args, url, duration, bucket_s, procs, label)
    if run is None:
        return SKIP

    rows, rss_mb = bucket_rows(run, n_buckets, bucket_s, duration, label)
    memory = memory_verdict(rss_mb, run["workers"], n_buckets, args.max_rss_growth, run["replaced"])
    if "final_buckets" in memory:
        memory["rule"] = (
            f"per worker, the median RSS of {label}s {memory['final_buckets']} is within "
            f"{args.max_rss_growth:g}% of its median over {label}s {memory['baseline_buckets']} "
            f"({label} 1 is warm-up), and no worker was replaced"
        )
    integrity, errors = run["integrity"], sum(run["errors"].values())
    checks = {
        "no lost, duplicated or altered vote": integrity["lost"] == 0
        and integrity["duplicated"] == 0
        and integrity["other_choice"] == 0
        and integrity["completed_mismatch"] == 0,
        "no HTTP errors": errors == 0,
        "memory does not grow": memory["verdict"] != "grows",
    }
    report = {
        "command": " ".join(["python", "benchmarks/soak.py", *(argv or sys.argv[1:])]),
        "gunicorn": run["gunicorn"],
        "database": "sqlite" if url.startswith("sqlite") else "postgresql",
        "limits_storage": args.limits_storage or "memory://",
        "seconds": round(run["elapsed"], 1),
        "bucket_seconds": bucket_s,
        "clients": args.clients,
        "load_generator_processes": procs,
        "think_ms": args.think_ms,
        label + "s": rows,
        "integrity": integrity,
        "errors": errors,
        "statuses": dict(sorted(run["statuses"].items())),
        "failures": run["failures"],
        "workers": sorted(run["workers"]),
        "memory": memory,
        "checks": checks,
        "passed": all(checks.values()),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "load_average_after": os.getloadavg(),
    }

    print(
        f"{label:>7}{'req/s':>8}{'votes/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'vote p50':>9}{'vote p99':>9}{'errors':>7}  worker RSS MB"
    )
    for row in rows:
        rss = " ".join(f"{mb:.0f}" for mb in row["worker_rss_mb"].values())
        print(
            f"{row[label]:>7}{row['requests_per_s']:>8}{row['votes_per_s']:>9}"
            f"{row['p50_ms']!s:>8}{row['p99_ms']!s:>8}{row['vote_p50_ms']!s:>9}"
            f"{row['vote_p99_ms']!s:>9}{row['errors']:>7}  {rss}"
        )
    i = integrity
    print(
        f"votes: {i['acknowledged']} acknowledged, {i['stored']} stored; lost {i['lost']}, "
        f"duplicated {i['duplicated']}, other choice {i['other_choice']}; participants "
        f"{i['participants']}, completed {i['completed_in_database']}; HTTP errors {errors}"
    )
    print(f"memory: {memory['verdict']} ({memory.get('rule', memory.get('reason'))})")
    for pid, w in memory.get("per_worker", {}).items():
        print(f"  worker {pid}: {w}")
    print("checks:", ", ".join(f"{k} {'OK' if v else 'FAILED'}" for k, v in checks.items()))
    if run["failures"]:
        print("first failures:", *run["failures"][:5], sep="\n  ")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
