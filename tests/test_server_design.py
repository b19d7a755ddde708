"""A study beyond MNIST: the server follows the survey design of the bundle it loads.

The bundle here has five named classes, 224 x 224 RGB overlay maps and a survey block that
asks three of the classes twice with three methods as the options and two attention checks.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from study_server.survey import design_survey
from tests.server_fixtures import (
    LiveServer,
    Walker,
    hidden_fields,
    image_urls,
    make_server,
    option_geometry,
    participant_items,
)

PETS = ("cat", "dog", "fox", "owl", "eel")
METHODS = ("normlime", "lime", "smoothgrad")
SURVEY = {
    "methods": list(METHODS),
    "classes": [0, 2, 4],
    "repeats": 2,
    "attention_checks": 2,
    "check_methods": ["normlime", "lime"],
    # dog is never asked, only shown as every class's look-alike; owl is never shown
    "lookalike": {"0": 1, "2": 1, "4": 1},
    "question": "Which map best shows what the model looks for in {class}?",
}
N_ITEMS = 3 * 2 + 2


def write_pets_bundle(root, survey: dict = SURVEY):
    from explainers.bundle import write_bundle

    rng = np.random.default_rng(13)
    maps = {
        method: np.stack([_blob(c, k) for c in range(len(PETS))])
        for k, method in enumerate(METHODS)
    }
    write_bundle(
        root,
        maps,
        classes=PETS,
        display="overlay",
        representatives=rng.random((len(PETS), 3, 28, 28)),
        study_methods=METHODS,
        survey=survey,
    )
    return root


def _blob(class_index: int, method_index: int) -> np.ndarray:
    """A blob whose place depends on the class and whose size on the method."""
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    dist2 = (yy - 4 - 5 * class_index) ** 2 + (xx - 6 - 7 * method_index) ** 2
    return np.exp(-dist2 / (4.0 + 6.0 * method_index))


@pytest.fixture(scope="module")
def pets_bundle(tmp_path_factory):
    return write_pets_bundle(tmp_path_factory.mktemp("pets"))


@pytest.fixture
def pets_server(sqlite_url, pets_bundle):
    srv = make_server(sqlite_url, pets_bundle)
    yield srv
    srv.engine.dispose()


def _store(srv):
    return srv.app.extensions["normlime_maps"]


def test_the_store_holds_the_bundles_design_and_only_the_maps_it_shows(pets_server):
    store = _store(pets_server)
    d = store.design
    assert (d.n_items, d.n_options, d.class_names) == (N_ITEMS, 3, PETS)
    assert d.question == SURVEY["question"]
    assert set(store.pngs) == {(m, c) for m in METHODS for c in (0, 1, 2, 4)}
    png = store.png("lime", 4)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height, png[25]) == (224, 224, 2)  # 224 x 224 truecolour


def _question(page: str) -> tuple[int, int, str]:
    m = re.search(r"Question (\d+) of (\d+)", page)
    name = re.search(r'<mark class="digit">([^<]*)</mark>', page).group(1)
    return int(m.group(1)), int(m.group(2)), html.unescape(name)


def test_a_participant_takes_the_whole_three_option_survey(pets_server):
    srv = pets_server
    store = _store(srv)
    w = Walker(srv).begin()
    items = participant_items(srv, w.token)
    seed = srv.scalar("SELECT seed FROM participants WHERE token = :t", t=w.token)
    assert [
        (it.position, it.is_check, it.digit, [s.as_list() for s in it.slots])
        for it in design_survey(seed, design=store.design)
    ] == [(s["position"], s["is_check"], s["digit"], s["slots"]) for s in items]
    sent = {}
    for k, item in enumerate(items, start=1):
        page = w.page
        assert _question(page) == (k, N_ITEMS, PETS[item["digit"]])
        assert "Which map best shows what the model looks for in <mark" in page
        assert f"Label: {PETS[item['digit']]}</span>" in page
        assert 'class="options options-3"' in page
        urls = image_urls(page)
        assert len(urls) == 3
        for url, (method, class_index, _role) in zip(urls, item["slots"], strict=True):
            assert w.client.get(url).get_data() == store.png(method, class_index)
        # a fourth option does not exist on a three-option question
        before = srv.snapshot()
        refused = w.answer(4, page)
        assert refused.status_code == 400
        assert "'c' is out of range" in html.unescape(refused.get_data(as_text=True))
        assert srv.snapshot() == before
        sent[k] = k % 3 + 1
        assert w.answer(sent[k], page).status_code == 200
    assert f"All {N_ITEMS} answers are saved" in w.page
    rows = srv.rows(
        "SELECT r.position, r.choice, r.chosen_method, r.chosen_role FROM responses r "
        "JOIN participants p ON p.id = r.participant_id WHERE p.token = :t ORDER BY r.position",
        t=w.token,
    )
    assert [r[0] for r in rows] == list(range(1, N_ITEMS + 1))  # every vote exactly once
    for (position, choice, method, role), item in zip(rows, items, strict=True):
        assert choice == sent[position]
        assert [method, role] == [item["slots"][choice - 1][0], item["slots"][choice - 1][2]]
    completed = srv.scalar(
        "SELECT completed_at IS NOT NULL FROM participants WHERE token = :t", t=w.token
    )
    assert completed


def test_a_repeated_vote_is_stored_once(pets_server):
    srv = pets_server
    w = Walker(srv).begin()
    first = w.page
    assert w.answer(2, first).status_code == 200
    assert w.answer(2, first).status_code == 200  # a retried request: acknowledged
    assert w.answer(3, first).status_code == 409  # a different answer: refused
    assert srv.scalar("SELECT count(*) FROM responses") == 1


def test_question_numbers_beyond_the_survey_are_refused(pets_server):
    srv = pets_server
    w = Walker(srv).begin()
    fields = {**hidden_fields(w.page), "c": "1", "q": str(N_ITEMS + 1)}
    before = srv.snapshot()
    r = w.client.post(w.home + "/answer", data=fields)
    assert r.status_code == 400
    assert "'q' is out of range" in html.unescape(r.get_data(as_text=True))
    assert w.client.get(f"/p/{w.token}/img/{N_ITEMS + 1}/" + "0" * 24).status_code == 404
    assert srv.snapshot() == before


def test_progress_and_the_passing_rule_follow_the_design(pets_server):
    from study_server import exports

    srv = pets_server
    w = Walker(srv).begin()
    items = participant_items(srv, w.token)
    failed_one = False
    for item in items:
        choice = 1
        if item["is_check"]:
            # every check but one right passes (the paper's 4 of 5): here 1 of 2
            right = next(k for k, s in enumerate(item["slots"], start=1) if s[2] == "correct")
            choice = right if failed_one else right % 3 + 1
            failed_one = True
        assert w.answer(choice).status_code == 200
    with srv.engine.connect() as conn:
        (progress,) = exports.study_progress(conn, _store(srv).design)
    assert (progress["items_per_survey"], progress["checks_per_survey"]) == (N_ITEMS, 2)
    assert (progress["completed"], progress["passing"], progress["pass_threshold"]) == (1, 1, 1)


def test_a_bundle_with_an_unusable_survey_block_is_refused_in_one_line(tmp_path, sqlite_url):
    from study_server.maps import BundleError

    bad = {**SURVEY, "lookalike": {"0": 1, "2": 1}}  # eel has none
    root = write_pets_bundle(tmp_path / "bad", bad)
    with pytest.raises(BundleError, match=r"survey design: lookalike .* \[4\] lack one") as info:
        make_server(sqlite_url, root)
    assert "\n" not in str(info.value)


def test_a_bundle_lacking_a_shown_map_is_refused(tmp_path, sqlite_url):
    from study_server.maps import BundleError, load_maps

    root = write_pets_bundle(tmp_path / "pets")
    # dog is only a look-alike: its maps are still needed for the checks
    (root / "png" / "lime-1.png").unlink()
    with pytest.raises(BundleError, match=r"lacks png/lime-1\.png"):
        load_maps(root)
    # a method the survey shows that the bundle does not have
    root = write_pets_bundle(tmp_path / "four", {**SURVEY, "methods": [*METHODS, "vargrad"]})
    with pytest.raises(BundleError, match="lacks maps for vargrad"):
        load_maps(root)


# ----------------------------------------------------------------------------- layout

SIX_METHODS = ("normlime", "lime", "smoothgrad", "vargrad", "occlusion", "kar")



def _option_boxes(browser, url: str, width: int, height: int) -> tuple[list, list]:
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(url)
    page.get_by_label("I have read the above and agree to take part.").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Question 1 of").wait_for()
    return option_geometry(page)


@pytest.mark.browser
@pytest.mark.timeout(180)
@pytest.mark.parametrize("n, phone_columns", [(2, 2), (3, 3), (5, 3), (6, 3)], ids=lambda v: str(v))
def test_two_to_six_options_fit_the_screen(tmp_path, sqlite_url, browser, n, phone_columns):
    """Like the MNIST page's four: equal square options, all on the first screen; one row
    on a laptop, rows of at most three on a phone."""
    from explainers.bundle import write_bundle

    methods = SIX_METHODS[:n]
    maps = {m: np.stack([_blob(c, k % 3) for c in range(5)]) for k, m in enumerate(methods)}
    survey = {**SURVEY, "methods": list(methods), "check_methods": [methods[0]]}
    write_bundle(tmp_path / "maps", maps, classes=PETS, study_methods=methods, survey=survey)
    srv = make_server(sqlite_url, tmp_path / "maps")
    with LiveServer(srv.app) as study:
        for width, height, columns in ((390, 844, phone_columns), (1280, 800, n)):
            boxes, imgs = _option_boxes(browser, f"{study.url}/s/{srv.study_key}", width, height)
            assert len(boxes) == n
            assert max(b[2] for b in boxes) - min(b[2] for b in boxes) < 0.5
            assert all(abs(w - h) < 0.5 for w, h in imgs) and min(i[0] for i in imgs) >= 90
            assert len({round(b[0]) for b in boxes}) == columns
            assert len({round(b[1]) for b in boxes}) == -(-n // columns)
            for left, top, w, h in boxes:
                assert left >= 0 and top >= 0 and left + w <= width and top + h <= height
    srv.engine.dispose()


def test_a_bundle_with_another_design_is_refused_while_surveys_are_open(
    sqlite_url, bundle_dir, pets_bundle
):
    """Open MNIST surveys (25 items of 4 options) cannot be served from the pets bundle."""
    from explainers.bundle import BundleError
    from study_server import create_app

    srv = make_server(sqlite_url, bundle_dir)
    Walker(srv).begin()  # one survey started, not finished
    before = srv.snapshot()
    cfg = {"SQLALCHEMY_DATABASE_URI": sqlite_url, "MAPS_DIR": str(pets_bundle)}
    with pytest.raises(BundleError, match="surveys still open in the database have 25 items"):
        create_app(cfg)
    assert srv.snapshot() == before
    create_app({**cfg, "MAPS_DIR": str(bundle_dir)})  # the bundle they started with is fine
    srv.engine.dispose()


def test_open_version_1_surveys_keep_their_checks_when_the_bundle_gains_pictures(
    tmp_path, sqlite_url, bundle_dir
):
    """Issue 20, item 7: new participants get version 2's picture checks; a participant who
    started under version 1 (a bundle without pictures) keeps the survey stored for them,
    and its map checks are still served."""
    from tests.server_fixtures import make_bundle

    old = make_bundle(tmp_path / "old", pictures=False)
    srv = make_server(sqlite_url, old)
    assert _store(srv).design.version == 1
    first = Walker(srv).begin(worker="WOLD", assignment="AOLD")
    stored = participant_items(srv, first.token)
    srv.engine.dispose()

    srv = make_server(sqlite_url, bundle_dir)  # the same study, now with class pictures
    store = _store(srv)
    assert store.design.version == 2
    assert {("picture", c) for c in range(10)} <= set(store.pngs)
    second = Walker(srv).begin(worker="WNEW", assignment="ANEW")
    versions = dict(srv.rows("SELECT token, survey_version FROM participants"))
    assert versions == {first.token: 1, second.token: 2}
    assert participant_items(srv, first.token) == stored  # untouched
    old_checks = [it for it in stored if it["is_check"]]
    assert {s[0] for it in old_checks for s in it["slots"]} <= {"normlime", "lime"}
    new_checks = [it for it in participant_items(srv, second.token) if it["is_check"]]
    assert {s[0] for it in new_checks for s in it["slots"]} == {"picture"}
    # the old participant finishes; every image of their checks is served
    walker = Walker(srv)  # the new server's client; the token in the URL is the identity
    walker.home = first.home
    walker.show()
    for item in stored:
        urls = image_urls(walker.page)
        assert all(walker.client.get(u).status_code == 200 for u in urls)
        correct = next(i for i, s in enumerate(item["slots"], 1) if s[2] != "distractor")
        walker.answer(correct)
    assert "Thank you" in walker.page
    srv.engine.dispose()
