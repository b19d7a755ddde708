"""The preview, consent and instructions pages describe the study the loaded bundle runs.

The MNIST study keeps the pages it ran with, worked example of a handwritten 4 included;
any other study's pages are built from its design and say nothing about digits.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from tests.server_fixtures import Walker, make_server
from tests.test_server_design import SURVEY, write_pets_bundle

MTURK_WORKER = {
    "workerId": "W1",
    "assignmentId": "A1",
    "hitId": "H1",
    "turkSubmitTo": "https://workersandbox.mturk.com",
}
MNIST_WORDING = ("digit", "handwritten", "four images", "nine", "example-four", "worked example")


def _pages(srv) -> dict[str, str]:
    """The preview, consent and instructions pages a worker sees before the first item."""
    w = Walker(srv)
    preview = w.enter("mturk", assignmentId="ASSIGNMENT_ID_NOT_AVAILABLE", hitId="H1")
    assert preview.status_code == 200
    pages = {"preview": preview.get_data(as_text=True)}
    assert w.enter("mturk", **MTURK_WORKER).status_code == 200
    pages["consent"] = w.page
    assert w.consent().status_code == 303
    assert w.show().status_code == 200
    pages["instructions"] = w.page
    return pages


def _text(page: str) -> str:
    """What a participant reads: the page's text without markup, on one line."""
    body = page.split("<main>", 1)[1]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


@pytest.fixture
def pets_server(sqlite_url, tmp_path):
    srv = make_server(sqlite_url, write_pets_bundle(tmp_path / "pets"))
    yield srv
    srv.engine.dispose()


def test_a_non_mnist_studys_pages_describe_its_own_design(pets_server):
    pages = _pages(pets_server)
    texts = {name: _text(page) for name, page in pages.items()}
    for name, text in texts.items():
        for word in MNIST_WORDING:
            assert word not in text.lower(), (name, word)
        assert "the classes cat, fox and eel" in text, name
        # dog and owl are bundle classes the survey never asks about
        assert "dog" not in text and "owl" not in text, name
        assert "<img" not in pages[name], name
    assert "8 sets of three images" in texts["preview"]
    assert "recognise images of 5 classes" in texts["preview"]
    assert "It takes about 3–5 minutes." in texts["preview"]
    assert "Some sets are attention checks" in texts["preview"]
    assert "answer 8 short questions by clicking on one of three images" in texts["consent"]
    assert "it takes about 3–5 minutes" in texts["consent"]
    instructions = texts["instructions"]
    assert "You will see 8 sets of three images." in instructions
    assert "a computer model that has learned to recognise images of 5 classes." in instructions
    assert (
        "select the image that best highlights what makes this particular class different "
        "from the other classes." in instructions
    )
    assert "Keep an eye on the class" in instructions
    assert "in the question above the three images" in instructions
    assert "A few sets are attention checks with one clearly correct answer." in instructions
    # the class name is marked as on the item pages, whose question it points to
    assert 'highlighted in <mark class="digit">yellow</mark>' in pages["instructions"]


def test_a_single_class_survey_without_checks_claims_no_checks(sqlite_url, tmp_path):
    survey = {**SURVEY, "classes": [3], "attention_checks": 0}
    srv = make_server(sqlite_url, write_pets_bundle(tmp_path / "owl", survey))
    try:
        texts = {name: _text(page) for name, page in _pages(srv).items()}
    finally:
        srv.engine.dispose()
    for name, text in texts.items():
        assert "attention check" not in text, name
        assert "the class owl" in text and "the classes" not in text, name
    assert "2 sets of three images" in texts["preview"]
    assert "It takes about 1–2 minutes." in texts["preview"]
    assert "answer 2 short questions" in texts["consent"]


def test_many_asked_classes_are_counted_not_listed(sqlite_url, tmp_path):
    from explainers.bundle import write_bundle

    names = tuple(f"kind{k:02d}" for k in range(12))
    methods = ("normlime", "lime")
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    maps = {
        m: np.stack(
            [np.exp(-((yy - 2 - 2 * c) ** 2 + (xx - 8 - 9 * k) ** 2) / 6) for c in range(12)]
        )
        for k, m in enumerate(methods)
    }
    survey = {"methods": list(methods), "repeats": 1, "attention_checks": 0}
    write_bundle(tmp_path / "many", maps, classes=names, study_methods=methods, survey=survey)
    srv = make_server(sqlite_url, tmp_path / "many")
    try:
        texts = {name: _text(page) for name, page in _pages(srv).items()}
    finally:
        srv.engine.dispose()
    for name, text in texts.items():
        assert "kind" not in text, name
    assert "12 sets of two images" in texts["preview"]
    assert "recognise images of 12 classes. Bright areas" in texts["instructions"]


def test_the_mnist_studys_pages_keep_their_wording(sqlite_server):
    pages = _pages(sqlite_server)
    assert (
        "<h1>Which image explains a digit best?</h1>\n"
        "<p>In this task you look at 25 sets of four images. Each image shows which pixels a\n"
        "computer model considers important when it recognises a handwritten digit (0&ndash;9).\n"
        "For each set you pick the image that best highlights what makes that digit "
        "different from\n"
        "the other nine digits.</p>\n<ul>\n<li>It takes about 10&ndash;15 minutes.</li>\n"
        "<li>Instructions with a worked example come first.</li>\n"
        "<li>Some sets are attention checks with one clearly correct answer.</li>\n</ul>\n"
    ) in pages["preview"]
    assert (
        "<h1>Before you begin</h1>\n<p>This is a research study about how people judge visual "
        "explanations produced by computer\nmodels. You will answer 25 short questions by "
        "clicking on one of four images;\nit takes about 10&ndash;15 minutes.</p>\n"
    ) in pages["consent"]
    # what follows the study's paragraph is the consent facts (issue 24): what is kept
    assert "<h2>What we keep</h2>" in pages["consent"]
    instructions = pages["instructions"]
    assert (
        "<h1>Instructions</h1>\n<p>You will see 25 sets of four images. Every image is a map "
        "drawn by a computer\nmodel that has learned to recognise handwritten digits. Bright "
        "pixels are the pixels the\nmodel treats as important for one digit.</p>\n"
    ) in instructions
    assert "apart from the other nine digits.</p>\n<h2>A worked example</h2>" in instructions
    assert '<img src="/static/example-four.svg" alt="A handwritten four;' in instructions
    assert (
        "<h2>Keep an eye on the digit</h2>\n<p>Each set is about one digit. It is highlighted "
        'in <mark class="digit">yellow</mark> in the\nquestion above the four images,'
    ) in instructions
    assert (
        "read it every time.</p>\n<p>A few sets are attention checks with one clearly correct "
        "answer. Your answer is saved the\nmoment you click an image"
    ) in instructions
