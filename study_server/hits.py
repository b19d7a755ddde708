"""MTurk HIT export: ExternalQuestion XML and the batch's links.

Amazon's documentation says Mechanical Turk closed permanently on 2026-09-30.  The export
is kept so the original study's setup can be replicated (and for MTurk-style panels); the
XML follows MTurk's 2006-07-14 ExternalQuestion schema: an HTTPS ``ExternalURL`` (with
``&`` escaped as ``&amp;``) and a ``FrameHeight`` in pixels (0 = the whole window).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from urllib.parse import urlencode, urlsplit
from xml.sax.saxutils import escape

__all__ = [
    "EXTERNAL_QUESTION_NS",
    "REQUESTER_ENDPOINTS",
    "HitExportError",
    "external_question_xml",
    "write_hits",
]

EXTERNAL_QUESTION_NS = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/"
    "ExternalQuestion.xsd"
)
REQUESTER_ENDPOINTS = {
    False: "https://mturk-requester.us-east-1.amazonaws.com",
    True: "https://mturk-requester-sandbox.us-east-1.amazonaws.com",
}
WORKER_SITES = {False: "https://worker.mturk.com", True: "https://workersandbox.mturk.com"}


class HitExportError(ValueError):
    """Bad export settings (one readable line)."""


def external_question_xml(url: str, frame_height: int) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise HitExportError(f"MTurk needs an HTTPS ExternalURL, got {url!r}")
    if not 0 <= int(frame_height) <= 10_000:
        raise HitExportError("FrameHeight must be between 0 and 10000 pixels")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ExternalQuestion xmlns="{EXTERNAL_QUESTION_NS}">\n'
        f"  <ExternalURL>{escape(url)}</ExternalURL>\n"
        f"  <FrameHeight>{int(frame_height)}</FrameHeight>\n"
        "</ExternalQuestion>\n"
    )


def write_hits(
    out_dir: str | Path,
    *,
    base_url: str,
    study_key: str,
    study_name: str,
    study_mode: str,
    adapter: str,
    count: int,
    sandbox: bool,
    frame_height: int = 800,
    batch: str | None = None,
) -> dict:
    """Write DIR/external-question.xml, DIR/hits/hit-NNNN.xml, DIR/hits.csv, DIR/batch.json."""
    if count < 1:
        raise HitExportError("--count must be at least 1")
    if sandbox and study_mode == "live":
        raise HitExportError(
            f"study {study_name!r} is live; sandbox HITs need a debug or sandbox study"
        )
    if not sandbox and study_mode != "live":
        raise HitExportError(
            f"study {study_name!r} is in {study_mode} mode; live HITs need a live study "
            "(`normlime create-study --mode live`) or use --sandbox"
        )
    base = base_url.rstrip("/")
    if urlsplit(base).scheme != "https":
        raise HitExportError(
            f"--base-url must be an https:// URL (MTurk requirement), got {base!r}"
        )
    batch = batch or dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    entry = f"{base}/s/{study_key}/{adapter}"
    out = Path(out_dir)
    (out / "hits").mkdir(parents=True, exist_ok=True)
    shared_url = f"{entry}?{urlencode({'batch': batch})}"
    (out / "external-question.xml").write_text(external_question_xml(shared_url, frame_height))
    rows = []
    width = max(4, len(str(count)))
    for i in range(1, count + 1):
        label = f"{i:0{width}d}"
        url = f"{entry}?{urlencode({'batch': batch, 'hit': label})}"
        name = f"hits/hit-{label}.xml"
        (out / name).write_text(external_question_xml(url, frame_height))
        rows.append({"hit": label, "external_url": url, "question_file": name})
    with open(out / "hits.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["hit", "external_url", "question_file"])
        writer.writeheader()
        writer.writerows(rows)
    info = {
        "study": study_name,
        "mode": study_mode,
        "sandbox": sandbox,
        "batch": batch,
        "count": count,
        "frame_height": frame_height,
        "requester_endpoint": REQUESTER_ENDPOINTS[sandbox],
        "worker_site": WORKER_SITES[sandbox],
        "external_question": "external-question.xml",
        "note": "Amazon's documentation says MTurk closed on 2026-09-30; kept for replication.",
    }
    (out / "batch.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
