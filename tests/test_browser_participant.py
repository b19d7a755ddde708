"""Plain-link participants and phones, in headless Chromium (see test_browser_mturk.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.server_fixtures import LiveServer, make_server, option_geometry

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]



def _begin(page, url: str) -> None:
    page.goto(url)
    page.get_by_label("I have read the above and agree to take part.").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Instructions").wait_for()


def test_plain_link_participant_resumes(sqlite_url, bundle_dir, browser):
    srv = make_server(sqlite_url, bundle_dir)
    with LiveServer(srv.app) as study:
        link = f"{study.url}/s/{srv.study_key}"
        context = browser.new_context()
        page = context.new_page()
        _begin(page, link)
        resume = page.locator("a.resume-link").get_attribute("href")
        assert resume.startswith(f"{study.url}/p/")
        page.get_by_role("button", name="Start").click()
        for k in range(1, 4):
            page.get_by_text(f"Question {k} of 25").wait_for()
            page.locator(".option").nth(k % 4).click()
        page.get_by_text("Question 4 of 25").wait_for()
        page.close()
        # the same browser, the same plain link: back at question 4, no new consent
        page = context.new_page()
        page.goto(link)
        page.get_by_text("Question 4 of 25").wait_for()
        # another browser (no cookie) with the resume link: also question 4
        other = browser.new_context().new_page()
        other.goto(resume)
        other.get_by_text("Question 4 of 25").wait_for()
    assert srv.scalar("SELECT count(*) FROM participants") == 1
    assert srv.scalar("SELECT count(*) FROM responses") == 3


@pytest.mark.parametrize("width,height,columns", [(390, 844, 2), (1280, 800, 4)])
def test_four_equal_options_fit_the_screen(sqlite_url, bundle_dir, browser, width, height,
                                           columns, tmp_path):  # fmt: skip
    srv = make_server(sqlite_url, bundle_dir)
    with LiveServer(srv.app) as study:
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        _begin(page, f"{study.url}/s/{srv.study_key}")
        page.get_by_role("button", name="Start").click()
        page.get_by_text("Question 1 of 25").wait_for()
        boxes, imgs = option_geometry(page)
        page.screenshot(
            path=str(
                Path(os.environ.get("NORMLIME_SCREENSHOTS", tmp_path)) / f"question-{width}.png"
            )
        )
    assert len(boxes) == 4
    # equal sizes, in the DOM
    assert max(b[2] for b in boxes) - min(b[2] for b in boxes) < 0.5
    assert max(b[3] for b in boxes) - min(b[3] for b in boxes) < 0.5
    assert max(i[0] for i in imgs) - min(i[0] for i in imgs) < 0.5
    assert all(abs(w - h) < 0.5 for w, h in imgs) and min(i[0] for i in imgs) >= 140
    # a grid of `columns` columns, all four options inside the first screen
    assert len({round(b[0]) for b in boxes}) == columns
    assert len({round(b[1]) for b in boxes}) == 4 // columns
    for left, top, w, h in boxes:
        assert left >= 0 and top >= 0 and left + w <= width and top + h <= height, boxes


def test_options_take_a_vote_only_once_every_image_has_loaded(sqlite_url, bundle_dir, browser):
    srv = make_server(sqlite_url, bundle_dir)
    with LiveServer(srv.app) as study:
        page = browser.new_context().new_page()
        _begin(page, f"{study.url}/s/{srv.study_key}")
        held = []
        # hold the second image back, as a slow connection would
        page.route("**/img/1/**", lambda route: held.append(route))
        page.get_by_role("button", name="Start").click()
        page.get_by_text("Question 1 of 25").wait_for()
        page.wait_for_function("document.querySelectorAll('img').length === 4")
        while len(held) < 4:
            page.wait_for_timeout(50)
        for route in held[:3]:
            route.continue_()
        page.wait_for_timeout(300)
        assert page.locator("form.options.loading").count() == 1
        assert all(page.locator(".option").nth(i).is_disabled() for i in range(4))
        page.locator(".option").first.click(force=True)  # a click on a closed option
        page.wait_for_timeout(300)
        assert srv.scalar("SELECT count(*) FROM responses") == 0
        held[3].continue_()
        page.wait_for_selector("form.options:not(.loading)")
        page.locator(".option").nth(2).click()
        page.get_by_text("Question 2 of 25").wait_for()
    assert srv.scalar("SELECT count(*) FROM responses") == 1
    # the page said when its pictures were complete: after the held one was let through
    assert srv.scalar("SELECT images_ms FROM responses") >= 600
