"""Load test of the study server: gunicorn on PostgreSQL, 100 concurrent participants.

    .venv/bin/python benchmarks/load.py [--clients 100] [--workers 4] [--threads 1]
        [--surveys-per-client 3] [--duration 8] [--db URL] [--maps DIR] [--json OUT]

One run, one gunicorn, one database, three phases with the same number of concurrent
clients (each client: one connection per request, as browsers behind MTurk would do):

1. ``ping``     GET /_bench/ping: Flask dispatch and nothing else (the HTTP ceiling);
2. ``durable``  POST /_bench/vote: one INSERT and its COMMIT (the database floor);
3. ``survey``   real participants: each client enters, consents and starts
                ``--surveys-per-client`` surveys, then answers all their 25 items through
                the real vote path (token check, validation, insert, next page rendered).

For 2 and 3 the database is read afterwards: every acknowledged vote must be there, once
(``lost`` = acknowledged but absent, ``duplicated`` = stored more than once).  A vote is
acknowledged only after its commit (PostgreSQL ``synchronous_commit`` stays on).

Without ``--db`` a fresh database ``normlime_bench_<random>`` is created on the local
PostgreSQL server and dropped afterwards.  The reference endpoints exist only because
the benchmark sets NORMLIME_BENCHMARK_ENDPOINTS=1; the participant rate limit is raised
so the simulated participants (far faster than people) are not throttled.
Targets: survey votes/s >= 60% of durable votes/s, survey vote p99 < 250 ms, 0 lost, 0 dup.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
FIELD_RE = re.compile(rb'<input type="hidden" name="([^"]+)" value="([^"]*)"')


# ----------------------------------------------------------------------------- HTTP client


class Client:
    """A minimal HTTP/1.1 client on a blocking socket: one connection per request, read
    until the server closes.  (Threads with blocking sockets drove gunicorn 2-3x harder
    than asyncio streams on this machine, at the level of ``ab``.)"""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def request(self, method: str, path: str, form: dict | None = None):
        body = urlencode(form).encode() if form is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nConnection: close\r\n"
        if form is not None:
            head += (
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n"
            )
        with socket.create_connection((self.host, self.port), timeout=60) as sock:
            sock.sendall(head.encode() + b"\r\n" + body)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        data = b"".join(chunks)
        head_end = data.find(b"\r\n\r\n")
        status = int(data[9:12])
        hdrs = {}
        for line in data[:head_end].decode("latin-1").split("\r\n")[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs, data[head_end + 4 :]


def fields(body: bytes) -> dict:
    return {k.decode(): v.decode() for k, v in FIELD_RE.findall(body)}


# ----------------------------------------------------------------------------- phases
# Each phase runs in several client processes (so the client is not one core's worth of
# Python); each process runs its share of the clients as threads.


def _threads(fn, items) -> list:
    with ThreadPoolExecutor(max(1, len(items))) as pool:
        return list(pool.map(fn, items))


def ping_phase(args) -> dict:
    host, port, n_clients, duration = args

    def one(_):
        client, lat = Client(host, port), []
        end = time.time() + duration
        while time.time() < end:
            t0 = time.perf_counter()
            status, _, _ = client.request("GET", "/_bench/ping")
            lat.append(time.perf_counter() - t0)
            assert status == 200, status
        return lat

    t0 = time.time()
    res = _threads(one, list(range(n_clients)))
    return {"start": t0, "end": time.time(), "lat": [x for r in res for x in r]}


def durable_phase(args) -> dict:
    host, port, client_ids, duration = args

    def one(cid):
        client = Client(host, port)
        lat, acked = [], []
        end = time.time() + duration
        seq = 0
        while time.time() < end:
            seq += 1
            t0 = time.perf_counter()
            status, _, _ = client.request(
                "POST", "/_bench/vote", {"client": cid, "seq": seq, "choice": seq % 4 + 1}
            )
            lat.append(time.perf_counter() - t0)
            if status == 200:
                acked.append((cid, seq, seq % 4 + 1))
        return lat, acked

    t0 = time.time()
    res = _threads(one, client_ids)
    return {
        "start": t0,
        "end": time.time(),
        "lat": [x for r in res for x in r[0]],
        "acked": [x for r in res for x in r[1]],
    }


def enter_phase(args) -> dict:
    """Create participants: entry link, consent, start (not part of the vote figures)."""
    host, port, study_key, worker_ids = args

    def one(wid):
        c = Client(host, port)
        query = urlencode(
            {
                "workerId": wid,
                "assignmentId": f"{wid}-A",
                "hitId": "BENCH",
                "turkSubmitTo": "https://workersandbox.mturk.com",
            }
        )
        status, _, body = c.request("GET", f"/s/{study_key}/mturk?{query}")
        assert status == 200, status
        form = {**fields(body), "agree": "yes"}
        status, hdrs, _ = c.request("POST", f"/s/{study_key}/mturk/consent", form)
        assert status == 303, status
        home = urlsplit(hdrs["location"]).path
        status, _, _ = c.request("POST", home + "/start")
        assert status == 303, status
        status, _, body = c.request("GET", home)
        assert status == 200, status
        return home, fields(body)

    with ThreadPoolExecutor(25) as pool:
        return {"participants": list(pool.map(one, worker_ids))}


def vote_phase(args) -> dict:
    """Each client answers all 25 items of each of its participants, one after another."""
    host, port, groups, seed = args

    def one(indexed):
        i, group = indexed
        rng = random.Random(seed * 1000 + i)
        c = Client(host, port)
        lat, acked, errors = [], [], 0
        for home, form in group:
            for _ in range(25):
                choice = rng.randint(1, 4)
                t0 = time.perf_counter()
                status, _, body = c.request("POST", home + "/answer", {**form, "c": choice})
                lat.append(time.perf_counter() - t0)
                if status != 200:
                    errors += 1
                    break
                acked.append((home.rsplit("/", 1)[-1], int(form["q"]), choice))
                form = fields(body)
        return lat, acked, errors

    t0 = time.time()
    res = _threads(one, list(enumerate(groups)))
    return {
        "start": t0,
        "end": time.time(),
        "lat": [x for r in res for x in r[0]],
        "acked": [x for r in res for x in r[1]],
        "errors": sum(r[2] for r in res),
    }


def split(seq, n):
    return [seq[i::n] for i in range(n)]


def merge(results) -> dict:
    results = list(results)
    out = {"start": min(r["start"] for r in results), "end": max(r["end"] for r in results)}
    for key in ("lat", "acked"):
        out[key] = [x for r in results for x in r.get(key, [])]
    out["errors"] = sum(r.get("errors", 0) for r in results)
    return out


def summarise(name: str, res: dict, count_key: str = "lat") -> dict:
    elapsed = res["end"] - res["start"]
    lat = sorted(res["lat"])
    n = len(res[count_key])

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {
        "phase": name,
        "requests": len(lat),
        "acknowledged": n,
        "seconds": round(elapsed, 2),
        "per_second": round(n / elapsed, 1),
        "p50_ms": round(pct(0.50), 1),
        "p99_ms": round(pct(0.99), 1),
        "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None,
        # CPU per acknowledged request: what the throughput would be on idle cores
        "gunicorn_cpu_ms": round(res["cpu"]["gunicorn"] / max(n, 1) * 1000, 2),
        "postgres_cpu_ms": round(res["cpu"]["postgres"] / max(n, 1) * 1000, 2),
    }


# ----------------------------------------------------------------------------- setup


@contextlib.contextmanager
def database(url: str | None):
    if url:
        yield url
        return
    import psycopg

    name = f"normlime_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_db(url: str) -> tuple[str, object]:
    from sqlalchemy.orm import Session

    from study_server import bench, schema, studies
    from study_server.recruitment import default_adapters

    engine = schema.make_engine(url)
    schema.init_db(engine)
    bench.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        study = studies.create_study(
            session, f"bench-{secrets.token_hex(3)}", mode="debug", adapters=default_adapters()
        )
        session.flush()
        key = study.public_key
    return key, engine


def maps_dir(given: str | None, tmp: Path) -> Path:
    from study_server.maps import default_maps_dir

    if given:
        return Path(given)
    found = default_maps_dir()
    if (found / "manifest.json").is_file():
        return found
    import numpy as np

    from explainers.bundle import STUDY_METHODS, write_bundle

    rng = np.random.default_rng(0)
    write_bundle(tmp / "maps", {m: rng.random((10, 28, 28)) for m in STUDY_METHODS})
    return tmp / "maps"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(
    url: str, maps: Path, port: int, workers: int, threads: int, pool: int, limits: str = ""
):
    env = dict(
        os.environ,
        DATABASE_URL=url,
        NORMLIME_MAPS=str(maps),
        NORMLIME_BENCHMARK_ENDPOINTS="1",
        # raised, not removed: every request is still counted by the limiter
        NORMLIME_PARTICIPANT_RATE="1000000 per second",
        NORMLIME_IMAGE_RATE="1000000 per second",
        NORMLIME_ENTRY_RATE="1000000 per second",
        NORMLIME_MISS_RATE="1000000 per second",
        NORMLIME_DB_POOL_SIZE=str(pool),
        NORMLIME_LIMITS_STORAGE=limits or "memory://",
        NORMLIME_LIMITS_KEY_PREFIX=f"bench-{secrets.token_hex(4)}",
    )
    cmd = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-w", str(workers),
        "--threads", str(threads),
        "-b", f"127.0.0.1:{port}",
        "--backlog", "2048",
        "--log-level", "warning",
        "-c", "python:study_server.gunicorn_conf",
        "study_server:create_app()",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                    if b"200" in s.recv(64):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit("gunicorn did not start")
            time.sleep(0.3)
        yield cmd, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def cpu_seconds(master: int) -> dict:
    """CPU time (user + system) used so far by the gunicorn workers and by PostgreSQL."""
    tick = os.sysconf("SC_CLK_TCK")

    def used(pids):
        total = 0.0
        for pid in pids:
            try:
                fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields_[11]) + int(fields_[12])) / tick
        return total

    pg = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout
    return {"gunicorn": used(_children(master)), "postgres": used(int(x) for x in pg.split())}


def timed(master: int, fn):
    """Run fn(); return its result with the CPU seconds gunicorn and PostgreSQL spent."""
    before = cpu_seconds(master)
    out = fn()
    after = cpu_seconds(master)
    out["cpu"] = {k: after[k] - before[k] for k in before}
    return out


def verify(engine, survey_acked, durable_acked) -> dict:
    from sqlalchemy import text

    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT p.token, r.position, r.choice FROM responses r "
                "JOIN participants p ON p.id = r.participant_id"
            )
        ).all()
        bench_rows = conn.execute(text("SELECT client, seq, choice FROM bench_votes")).all()
    out = {}
    for name, acked, rows in (
        ("survey", survey_acked, stored),
        ("durable", durable_acked, bench_rows),
    ):
        rows = [tuple(r) for r in rows]
        keys = [r[:2] for r in rows]
        acked_set = set(acked)
        out[name] = {
            "acknowledged": len(acked),
            "stored": len(rows),
            "lost": len(acked_set - set(rows)),
            "duplicated": len(keys) - len(set(keys)),
            "unacknowledged_but_stored": len(set(rows) - acked_set),
        }
    return out


# ----------------------------------------------------------------------------- main


def survey_phase(pool, host, port, master, key, rnd, tag, n, procs, args):
    """Enter fresh participants on one server, then time their votes there."""
    workers = [f"BENCH{tag}{rnd:02d}-{i:05d}" for i in range(n * args.surveys_per_client)]
    t0 = time.time()
    entered = [
        p
        for r in pool.map(enter_phase, [(host, port, key, ws) for ws in split(workers, procs)])
        for p in r["participants"]
    ]
    took = time.time() - t0
    groups = split(entered, n)  # client i answers its surveys one by one
    survey = timed(
        master,
        lambda: merge(
            pool.map(
                vote_phase,
                [
                    (host, port, gs, rnd * 1000 + i + (500 if tag == "S" else 0))
                    for i, gs in enumerate(split(groups, procs))
                ],
            )
        ),
    )
    return survey, entered, took


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pool", type=int, default=2, help="DB connections per worker process")
    ap.add_argument("--surveys-per-client", type=int, default=3)
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per reference phase")
    ap.add_argument("--rounds", type=int, default=3, help="ping/durable/survey repetitions")
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--db", default=None, help="default: a fresh local PostgreSQL database")
    ap.add_argument("--maps", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--shared-limits",
        default="redis://127.0.0.1:6379",
        help="storage of the second server's limiter (the survey phase runs on both); "
        "'' to skip",
    )
    args = ap.parse_args(argv)

    host, n, procs = "127.0.0.1", args.clients, args.procs
    rounds = []
    survey_acked, durable_acked, survey_errors, n_participants = [], [], 0, 0
    with tempfile.TemporaryDirectory() as tmp, database(args.db) as url:
        key, engine = prepare_db(url)
        maps = maps_dir(args.maps, Path(tmp))
        port, port_shared = free_port(), free_port()
        shared = (
            gunicorn(url, maps, port_shared, args.workers, args.threads, args.pool,
                     args.shared_limits)  # fmt: skip
            if args.shared_limits
            else contextlib.nullcontext((None, None))
        )
        with (
            gunicorn(url, maps, port, args.workers, args.threads, args.pool) as (cmd, master),
            shared as (_cmd_shared, master_shared),
            ProcessPoolExecutor(procs) as pool,
        ):
            shares = [len(s) for s in split(list(range(n)), procs)]
            # Phases alternate, round after round, so that load from other processes on
            # the machine hits the references and the real path alike.
            for rnd in range(args.rounds):
                ping = timed(
                    master,
                    lambda: merge(
                        pool.map(ping_phase, [(host, port, k, args.duration) for k in shares])
                    ),
                )
                ids = [rnd * n + i for i in range(n)]
                durable = timed(
                    master,
                    lambda ids=ids: merge(
                        pool.map(
                            durable_phase,
                            [(host, port, part, args.duration) for part in split(ids, procs)],
                        )
                    ),
                )
                phases = [
                    summarise("ping (HTTP ceiling)", ping),
                    summarise("durable vote (INSERT+COMMIT floor)", durable, "acked"),
                ]
                servers = [("survey vote (real path)", port, master, "M")]
                if args.shared_limits:
                    servers.append(
                        ("survey vote (real path, shared limiter)", port_shared, master_shared, "S")
                    )
                enter_s = 0.0
                for label, srv_port, srv_master, tag in servers:
                    survey, entered, took = survey_phase(
                        pool, host, srv_port, srv_master, key, rnd, tag, n, procs, args
                    )
                    enter_s += took
                    phases.append(summarise(label, survey, "acked"))
                    survey_acked += survey["acked"]
                    survey_errors += survey["errors"]
                    n_participants += len(entered)
                row = phases
                rounds.append({"round": rnd + 1, "phases": row, "participant_setup_s": enter_s})
                print(
                    f"round {rnd + 1}: ping {row[0]['per_second']}/s, durable "
                    f"{row[1]['per_second']}/s, "
                    + ", ".join(f"{r['phase']} {r['per_second']}/s (p99 {r['p99_ms']} ms)"
                                for r in row[2:]),  # fmt: skip
                    flush=True,
                )
                durable_acked += durable["acked"]
        checks = verify(engine, survey_acked, durable_acked)
        engine.dispose()

    def med(i, key):
        return round(statistics.median(r["phases"][i][key] for r in rounds), 1)

    rows = [
        {
            "phase": rounds[0]["phases"][i]["phase"],
            "acknowledged": sum(r["phases"][i]["acknowledged"] for r in rounds),
            "per_second": med(i, "per_second"),
            "p50_ms": med(i, "p50_ms"),
            "p99_ms": med(i, "p99_ms"),
            "gunicorn_cpu_ms": med(i, "gunicorn_cpu_ms"),
            "postgres_cpu_ms": med(i, "postgres_cpu_ms"),
        }
        for i in range(len(rounds[0]["phases"]))
    ]
    # the target is for the production set-up: the shared limiter when it was measured
    last = len(rows) - 1
    ratios = [r["phases"][last]["per_second"] / r["phases"][1]["per_second"] for r in rounds]
    ratio = statistics.median(ratios)
    ratios_memory = [r["phases"][2]["per_second"] / r["phases"][1]["per_second"] for r in rounds]
    report = {
        "command": " ".join(["python", "benchmarks/load.py", *(argv or sys.argv[1:])]),
        "gunicorn": " ".join(cmd[1:]),
        "clients": args.clients,
        "load_generator_processes": args.procs,
        "participants": n_participants,
        "rounds": rounds,
        "median_phases": rows,
        "survey_vs_durable_per_round": [round(x, 3) for x in ratios],
        "survey_vs_durable": round(ratio, 3),
        "survey_vs_durable_memory_limiter": round(statistics.median(ratios_memory), 3),
        "shared_limits": args.shared_limits or None,
        "integrity": checks,
        "survey_errors": survey_errors,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "load_average_after": os.getloadavg(),
    }
    print(
        f"{'phase':<38}{'acked':>8}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'app CPU ms':>12}{'PG CPU ms':>11}"
    )
    for r in rows:
        print(
            f"{r['phase']:<38}{r['acknowledged']:>8}{r['per_second']:>9}"
            f"{r['p50_ms']:>9}{r['p99_ms']:>9}{r['gunicorn_cpu_ms']:>12}{r['postgres_cpu_ms']:>11}"
        )
    print(f"(medians over {len(rounds)} rounds)")
    print(
        f"survey votes/s vs durable votes/s: {ratio:.0%} ({rows[last]['phase']}; target >= 60%); "
        f"with the per-process limiter: {statistics.median(ratios_memory):.0%}"
    )
    for name, c in checks.items():
        print(
            f"{name}: {c['acknowledged']} acknowledged, {c['stored']} stored, "
            f"lost {c['lost']}, duplicated {c['duplicated']}"
        )
    targets = {
        "ratio>=0.6": ratio >= 0.6,
        "p99<250ms": rows[last]["p99_ms"] < 250,
        "no lost/duplicated": all(c["lost"] == 0 and c["duplicated"] == 0 for c in checks.values())
        and survey_errors == 0,
    }
    report["targets"] = targets
    print("targets:", ", ".join(f"{k} {'OK' if v else 'MISSED'}" for k, v in targets.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
