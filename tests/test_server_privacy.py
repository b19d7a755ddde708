"""Nothing a participant receives says which method drew which map."""

from __future__ import annotations

import re
import struct

from tests.server_fixtures import Walker, image_urls, participant_items

#: method names and telltales (file names, formats, the paper's vocabulary)
FORBIDDEN = re.compile(
    r"normlime|lime|smooth|vargrad|grad|saliency|manifest|\.npz|\.png|png/",
    re.IGNORECASE,
)


def png_chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, names = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        names.append(data[pos + 4 : pos + 8].decode("ascii"))
        pos += 12 + length
    return names


def test_pages_images_and_assets_reveal_no_method(sqlite_server):
    srv = sqlite_server
    w = Walker(srv).begin()
    items = participant_items(srv, w.token)
    seen_check = seen_real = False
    header_sets = set()
    pages = []
    for k in range(25):
        page = w.page
        pages.append(page)
        assert not FORBIDDEN.search(page), FORBIDDEN.search(page)
        urls = image_urls(page)
        assert len(urls) == 4 and len(set(urls)) == 4
        for url in urls:
            assert not FORBIDDEN.search(url)
            assert re.fullmatch(rf"/p/{w.token}/img/{k + 1}/[0-9a-f]{{24}}", url)
            r = w.client.get(url)
            assert r.status_code == 200 and r.mimetype == "image/png"
            # every header, Content-Length included: equal byte lengths by construction
            headers = {h: v for h, v in r.headers.items() if h != "Date"}
            header_sets.add(tuple(sorted(headers.items())))
            for name in ("Content-Disposition", "ETag", "Last-Modified", "Link"):
                assert name not in r.headers
            assert not FORBIDDEN.search(" ".join(f"{h}: {v}" for h, v in headers.items()))
            # no text or metadata chunks: nothing but the pixels and the one padding chunk
            assert png_chunks(r.get_data())[-2:] == ["npAd", "IEND"]
            assert set(png_chunks(r.get_data())) <= {"IHDR", "PLTE", "IDAT", "npAd", "IEND"}
            # a proxy must not recompress them (the families would differ in size)
            assert "no-transform" in r.headers["Cache-Control"]
        if items[k]["is_check"]:
            seen_check = True
        else:
            seen_real = True
        assert w.answer(1).status_code == 200
    assert seen_check and seen_real
    # every image response carries exactly the same headers
    assert len(header_sets) == 1
    # attention checks use the very same template as real questions
    skeletons = {_skeleton(p) for p in pages}
    assert len(skeletons) == 1
    for asset in ("/static/style.css", "/static/survey.js", "/static/example-four.svg"):
        body = w.client.get(asset).get_data(as_text=True)
        assert not FORBIDDEN.search(body), (asset, FORBIDDEN.search(body))
    # the other participant pages too
    for path in (w.home, f"/s/{srv.study_key}", f"/s/{srv.study_key}/mturk"):
        page = w.client.get(path).get_data(as_text=True)
        assert not FORBIDDEN.search(page)


def _skeleton(page: str) -> str:
    """A page with its per-item values (numbers, ids, signatures) blanked out."""
    page = re.sub(r"/p/[A-Za-z0-9_-]{32}[^\"]*", "URL", page)
    page = re.sub(r'value="[0-9a-f]{24}"', 'value="SIG"', page)
    return re.sub(r"\d+", "N", page)


def test_image_urls_differ_between_participants_for_the_same_map(sqlite_server):
    srv = sqlite_server
    a = Walker(srv).begin(worker="WA", assignment="AA")
    b = Walker(srv).begin(worker="WB", assignment="AB")
    assert not set(image_urls(a.page)) & set(image_urls(b.page))
    # one participant's image URL does not open for another participant
    url = image_urls(a.page)[0]
    foreign = url.replace(a.token, b.token)
    assert b.client.get(foreign).status_code == 404


def test_pre_rendered_item_page_equals_the_jinja_rendering(sqlite_url, bundle_dir):
    """The vote path joins pre-rendered pieces; it must equal rendering item.html."""
    from flask import render_template

    from tests.server_fixtures import make_server

    for mode in ("debug", "live"):
        srv = make_server(sqlite_url, bundle_dir, mode=mode)
        w = Walker(srv)
        w.enter("link")
        w.consent()
        w.start()
        w.answer(3)
        served = w.page
        token, position = w.token, 2
        with srv.app.test_request_context():
            from study_server import tokens
            from study_server.survey import MNIST_DESIGN

            base = f"/p/{token}"
            expected = render_template(
                "item.html",
                position=position,
                answered=position - 1,
                n_items=25,
                question=MNIST_DESIGN.question,
                class_name=str(participant_items(srv, token)[1]["digit"]),
                images=[
                    f"{base}/img/{position}/{tokens.image_id(srv.secret, token, position, s)}"
                    for s in range(1, 5)
                ],
                signature=tokens.form_signature(srv.secret, token, position),
                action=f"{base}/answer",
                home=base,
                mode=mode,
            )
        assert served == expected
        # the MNIST study's wording, as the page always had it
        assert (
            '<h1 class="ask">From the following set of four images, please select the image '
            "that best\nhighlights the pixels that distinguish the number "
            '<mark class="digit">'
        ) in served
        assert '</mark>\nfrom the other nine possible digits.</h1>\n<form method="post"' in served
        assert 'class="options" data-home=' in served
        srv.engine.dispose()
