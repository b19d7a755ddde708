"""A simulated MTurk worker in headless Chromium (Debian's, driven by Playwright).

The worker previews the HIT, accepts it, answers all 25 items inside MTurk's cross-site
iframe (the HIT page is served from ``localhost``, the study from ``127.0.0.1``: different
sites, so no cookie could be shared), reloads half-way and resumes, and the final submit
reaches a local fake ``turkSubmitTo`` endpoint with the right assignmentId.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from urllib.parse import urlencode

import pytest

from tests.server_fixtures import LiveServer, make_server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_or_skip() -> str:
    if CHROMIUM:
        return CHROMIUM
    if os.environ.get("NORMLIME_REQUIRE_BROWSER"):
        pytest.fail("Chromium is required (NORMLIME_REQUIRE_BROWSER is set) but not installed")
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")


def fake_mturk(study_url_for):
    """MTurk stand-in: a HIT page framing the ExternalURL, and externalSubmit."""
    from flask import Flask, request

    app = Flask("fake_mturk")
    app.submissions = []

    @app.get("/hit")
    def hit():
        return (
            "<!doctype html><title>HIT</title><h1>Fake MTurk HIT</h1>"
            f'<iframe id="task" src="{study_url_for(request.args)}" width="1100" height="900">'
            "</iframe>"
        )

    @app.post("/mturk/externalSubmit")
    def external_submit():
        app.submissions.append(dict(request.form))
        return "<!doctype html><title>done</title><p id='submitted'>HIT submitted</p>"

    return app


def test_mturk_worker_previews_accepts_answers_resumes_and_submits(sqlite_url, bundle_dir):
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    srv = make_server(sqlite_url, bundle_dir, mode="debug")
    rng = random.Random(5)
    with LiveServer(srv.app) as study:
        mturk_holder = {}

        def study_url_for(args):
            params = {"hitId": "HIT-1"}
            if args.get("preview"):
                params["assignmentId"] = "ASSIGNMENT_ID_NOT_AVAILABLE"
            else:
                params.update(
                    assignmentId="ASSIGN-BROWSER",
                    workerId="WORKER-BROWSER",
                    turkSubmitTo=mturk_holder["url"],
                )
            return f"{study.url}/s/{srv.study_key}/mturk?{urlencode(params)}"

        mturk_app = fake_mturk(study_url_for)
        with LiveServer(mturk_app) as mturk:
            mturk_holder["url"] = f"http://localhost:{mturk.port}"
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
                try:
                    context = browser.new_context()
                    page = context.new_page()
                    run_worker(page, mturk_holder["url"], rng, srv)
                    assert context.cookies() == []  # participants never get a cookie
                finally:
                    browser.close()
            # the tab was closed before Submit; reopening the HIT showed the completion
            # page, and its form was submitted twice (the second is harmless)
            assert len(mturk_app.submissions) == 2
            assert mturk_app.submissions[0] == mturk_app.submissions[1]
            submitted = mturk_app.submissions[0]
    code = srv.scalar("SELECT completion_code FROM participants")
    assert submitted == {"assignmentId": "ASSIGN-BROWSER", "completion_code": code}
    assert srv.scalar("SELECT count(*) FROM responses") == 25
    assert srv.scalar("SELECT count(DISTINCT position) FROM responses") == 25
    assert srv.scalar("SELECT count(*) FROM participants WHERE completed_at IS NOT NULL") == 1


def run_worker(page, mturk_url: str, rng: random.Random, srv) -> None:
    # preview: the description only, no participant, no maps
    page.goto(f"{mturk_url}/hit?preview=1")
    frame = page.frame_locator("#task")
    frame.get_by_text("This is a preview").wait_for()
    assert frame.locator("img").count() == 0
    assert srv.scalar("SELECT count(*) FROM participants") == 0

    # accept
    page.goto(f"{mturk_url}/hit")
    frame = page.frame_locator("#task")
    frame.get_by_label("I have read the above and agree to take part.").check()
    frame.get_by_role("button", name="Continue").click()
    frame.get_by_role("heading", name="Instructions").wait_for()
    frame.get_by_role("button", name="Start").click()

    for k in range(1, 26):
        frame.get_by_text(f"Question {k} of 25").wait_for()
        if k == 13:
            # reload half-way: the iframe opens the entry link again and resumes
            page.reload()
            frame = page.frame_locator("#task")
            frame.get_by_text("Question 13 of 25").wait_for()
            assert srv.scalar("SELECT count(*) FROM responses") == 12
        digit = frame.locator("mark.digit").inner_text()
        assert re.fullmatch(r"\d", digit)
        labels = frame.locator(".option .label").all_inner_texts()
        assert labels == [f"Option {i} · Label: {digit}" for i in range(1, 5)]
        images = frame.locator(".option img")
        assert images.count() == 4
        widths = images.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : -1)")
        if min(widths) <= 0:  # still loading: wait for each image
            for i in range(4):
                images.nth(i).evaluate(
                    "img => img.complete || new Promise(r => img.addEventListener('load', r))"
                )
            widths = images.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
        assert widths == [224] * 4
        frame.locator(".option").nth(rng.randrange(4)).click()

    frame.get_by_role("heading", name="Thank you!").wait_for()
    # the worker closes the tab before submitting, then reopens the HIT from their queue
    context = page.context
    page.close()
    for _ in range(2):
        page = context.new_page()
        page.goto(f"{mturk_url}/hit")
        frame = page.frame_locator("#task")
        frame.get_by_role("heading", name="Thank you!").wait_for()
        code = srv.scalar("SELECT completion_code FROM participants")
        assert code in frame.locator("code.code").inner_text()
        frame.get_by_role("button", name="Submit the task").click()
        frame.locator("#submitted").wait_for()
        page.close()
    assert srv.scalar("SELECT count(*) FROM participants") == 1
