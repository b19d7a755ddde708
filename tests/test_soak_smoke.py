"""benchmarks/soak.py, run for 8 seconds so that it cannot rot (the soak itself is not a
test: ``python benchmarks/soak.py --minutes 30``).

The same code path as the real run: a fresh PostgreSQL database, gunicorn -w 4 with the
limits in Redis, simulated participants through whole surveys, RSS sampling, the
database read back; only the durations are short (4 buckets of 2 s instead of minutes).
Skips when gunicorn cannot start (the script's exit status 77).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


def test_soak_runs_and_checks_every_vote(tmp_path):
    out = tmp_path / "soak.json"
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "soak.py"),
        "--seconds", "8", "--bucket-seconds", "2", "--clients", "4", "--procs", "1",
        # RSS over seconds says little: the verdict is computed, not enforced here
        "--max-rss-growth", "1000",
        "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=150)
    output = proc.stdout + proc.stderr
    if proc.returncode == 77:
        pytest.skip(f"gunicorn could not start: {output[-500:]}")
    assert proc.returncode == 0, output[-3000:]
    report = json.loads(out.read_text())

    assert report["passed"] and all(report["checks"].values()), report["checks"]
    assert report["database"] == "postgresql"
    assert report["limits_storage"].startswith("redis://")
    integrity = report["integrity"]
    # whole surveys went through (25 votes each) and every vote is stored exactly once
    assert integrity["completed_in_database"] >= 1, integrity
    assert integrity["acknowledged"] >= 25, integrity
    assert integrity["acknowledged"] == integrity["stored"], integrity
    assert integrity["lost"] == integrity["duplicated"] == integrity["other_choice"] == 0
    assert report["errors"] == 0 and report["failures"] == []
    # images, pages and answers all answered as a browser expects
    statuses = report["statuses"]
    for kind in ("entry 200", "consent 303", "start 303", "page 200", "image 200",
                 "answer 200", "completion 200"):  # fmt: skip
        assert statuses.get(kind, 0) >= 1, statuses
    assert statuses["image 200"] >= 4 * statuses["answer 200"]
    assert not any(k.startswith("ERROR") for k in statuses), statuses

    buckets = report["buckets"]
    assert [b["bucket"] for b in buckets] == [1, 2, 3, 4]
    assert sum(b["votes"] for b in buckets) == integrity["acknowledged"]
    for b in buckets:
        assert b["votes"] > 0 and b["p50_ms"] <= b["p99_ms"], b
        assert len(b["worker_rss_mb"]) == 4 and all(mb > 10 for mb in b["worker_rss_mb"].values())
    memory = report["memory"]
    assert memory["verdict"] == "pass" and not memory["workers_replaced"], memory
    assert memory["baseline_buckets"] == [2] and memory["final_buckets"] == [4]
    assert len(memory["per_worker"]) == 4 and all(
        "growth_pct" in w for w in memory["per_worker"].values()
    ), memory
