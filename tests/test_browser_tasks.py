"""One participant per help task in headless Chromium, at 1280 px and on a 390 px phone:
consent, the preview, the questions (options closed until the picture has loaded), the
completion page; every question's options fit the screen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.project_fixtures import run_cli
from tests.server_fixtures import LiveServer, make_server
from tests.synthetic_project import write_project
from tests.test_server_tasks import design

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def stimuli_dir(tmp_path_factory):
    root = write_project(tmp_path_factory.mktemp("btasks") / "project", data="data_with_errors")
    out = root.parent / "stimuli"
    run_cli("make-stimuli", "--project", root, "--out", out, "--learn", "4", "--test", "6")
    return out


@pytest.mark.parametrize("task", ["forward", "distinction", "agreement"])
@pytest.mark.parametrize("width,height", [(390, 844), (1280, 800)])
def test_one_participant_takes_each_task(sqlite_url, bundle_dir, stimuli_dir, browser, task,
                                         width, height, tmp_path):  # fmt: skip
    cfg = design(task, learn_items=2 if task == "forward" else 0, test_items=3,
                 attention_checks=1)  # fmt: skip
    srv = make_server(sqlite_url, bundle_dir, mode="live", study_config=cfg,
                      config={"STIMULI_DIR": str(stimuli_dir)})  # fmt: skip
    shots = Path(os.environ.get("NORMLIME_SCREENSHOTS", tmp_path))
    with LiveServer(srv.app) as study:
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        page.goto(f"{study.url}/s/{srv.study_key}")
        page.get_by_label("I have read the above and agree to take part.").check()
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("heading", name="Instructions").wait_for()
        assert page.locator("figure.example img").count() == 2
        page.screenshot(path=str(shots / f"{task}-instructions-{width}.png"), full_page=True)
        page.get_by_role("button", name="Start").click()
        n_items = (2 if task == "forward" else 0) + 3 + 1
        for k in range(1, n_items + 1):
            page.get_by_text(f"Question {k} of {n_items}").wait_for()
            page.wait_for_selector("form.options:not(.loading)")
            boxes = page.locator(".option").evaluate_all(
                "els => els.map(e => { const r = e.getBoundingClientRect();"
                " return [r.left, r.right, r.bottom]; })"
            )
            for left, right, _bottom in boxes:
                assert left >= 0 and right <= width, (task, width, boxes)
            if k == 1:
                page.screenshot(path=str(shots / f"{task}-question-{width}.png"),
                                full_page=True)  # fmt: skip
            page.locator(".option").first.click()
        page.get_by_role("heading", name="Thank you!").wait_for()
    assert srv.scalar("SELECT count(*) FROM responses") == n_items
    # every vote was cast on a loaded page, and said so
    assert srv.scalar("SELECT count(*) FROM responses WHERE images_ms IS NULL") == 0
