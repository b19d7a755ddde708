"""Option images as served: small, method-blind in length, never refused at human speed,
and a vote records whether (and when) its page's images had loaded."""

from __future__ import annotations

import io
import time

import pytest

from study_server import imagebytes
from tests.server_fixtures import Walker, hidden_fields, image_urls, make_server

STORED_BYTES = 51_253  # one stored (uncompressed) 224 px map of the test bundle


def _decoded(png: bytes):
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        img.load()
        return img.mode, img.size, img.convert("RGB").tobytes()


def test_served_images_are_small_equal_in_length_and_the_same_pixels(sqlite_server):
    srv = sqlite_server
    store = srv.app.extensions["normlime_maps"]
    lengths = {len(data) for data in store.pngs.values()}
    assert lengths == {store.png_length}
    # measured: 2,580 B against 51,253 B stored (about 1/20)
    assert store.png_length * 15 < STORED_BYTES
    for (method, c), served in store.pngs.items():
        stored = (srv.maps_dir / f"png/{method}-{c}.png").read_bytes()
        assert len(stored) == STORED_BYTES
        assert _decoded(served) == _decoded(stored)
        assert imagebytes.chunks(served)[-2][0] == imagebytes.PAD_CHUNK
    w = Walker(srv).begin()
    responses = [w.client.get(url) for url in image_urls(w.page)]
    assert {r.headers["Content-Length"] for r in responses} == {str(store.png_length)}
    assert {r.headers["Cache-Control"] for r in responses} == {
        "private, max-age=86400, no-transform"
    }


def test_padding_is_exact_and_refuses_to_shrink():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8), 7).save(buf, format="PNG", compress_level=0)
    small = imagebytes.compact(buf.getvalue())
    assert len(small) < len(buf.getvalue())
    padded = imagebytes.pad_to(small, len(small) + 100)
    assert len(padded) == len(small) + 100 and _decoded(padded) == _decoded(buf.getvalue())
    # compacting a padded file drops the old padding
    assert imagebytes.compact(padded) == small
    with pytest.raises(ValueError, match="cannot be padded"):
        imagebytes.pad_to(small, len(small) + 5)
    with pytest.raises(ValueError, match="CRC"):
        imagebytes.chunks(padded[:20] + b"\xff" + padded[21:])


@pytest.mark.timeout(120)
def test_a_participant_at_the_fastest_human_pace_never_sees_a_429(sqlite_url, bundle_dir):
    # The default limits (no test overrides): every page and image of a whole survey,
    # answered every 250 ms (faster than a person can look at four pictures and click).
    srv = make_server(
        sqlite_url,
        bundle_dir,
        config={"PARTICIPANT_RATE": "100 per 10 seconds", "IMAGE_RATE": "600 per 10 seconds"},
    )
    w = Walker(srv).begin()
    statuses = []
    for _ in range(25):
        started = time.monotonic()
        statuses += [w.client.get(url).status_code for url in image_urls(w.page)]
        statuses.append(w.answer(1).status_code)
        time.sleep(max(0.0, 0.25 - (time.monotonic() - started)))
    assert "Thank you" in w.page
    assert set(statuses) == {200}, statuses.count(429)


def test_a_flood_of_image_requests_is_limited_without_stopping_the_pages(sqlite_url, bundle_dir):
    srv = make_server(sqlite_url, bundle_dir, config={"IMAGE_RATE": "8 per minute"})
    w = Walker(srv).begin()
    url = image_urls(w.page)[0]
    statuses = [w.client.get(url).status_code for _ in range(12)]
    assert statuses == [200] * 8 + [429] * 4
    assert w.answer(1).status_code == 200  # the page limit is another window


def test_the_vote_stores_the_image_load_time_the_page_reported(sqlite_server):
    srv = sqlite_server
    w = Walker(srv).begin()
    fields = {**hidden_fields(w.page), "c": "1", "l": "1234"}
    assert w.client.post(w.home + "/answer", data=fields).status_code == 200
    w.show()
    assert w.answer(2).status_code == 200  # a page without the script: not reported
    rows = srv.scalar("SELECT group_concat(coalesce(images_ms, -1)) FROM responses")
    assert rows == "1234,-1"
    before = srv.snapshot()
    for bad in ("-1", "3600001", "1.5", "x"):
        fields = {**hidden_fields(w.page), "c": "1", "l": bad}
        assert w.client.post(w.home + "/answer", data=fields).status_code == 400
    assert srv.snapshot() == before
