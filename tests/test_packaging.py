"""The package installs anywhere (issue 21, item 1).

The wheel is built from a copy of the source tree, installed without ``-e`` into a fresh
virtual environment, and run from an empty directory: ``normlime up --no-serve``, then a
whole survey through Flask's test client.  The fresh environment sees the test
environment's third-party packages (torch, Flask, ...) through a path entry, never the
source checkout, and the survey script checks that every module, template and asset it
used came from the installed copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "normlime_cli.py", "explainers", "analysis",
           "study_server", "templates", "static", "assets"]  # fmt: skip

SURVEY = textwrap.dedent(
    r'''
    import html, json, re, sys
    from pathlib import Path

    import explainers, study_server
    from sqlalchemy import create_engine, text
    from study_server import create_app

    prefix = Path(sys.argv[1]).resolve()
    for module in (explainers, study_server):
        assert Path(module.__file__).resolve().is_relative_to(prefix), module.__file__
    app = create_app()  # the defaults: artifacts/study.sqlite3 here, the shipped bundle
    for folder in (app.template_folder, app.static_folder, app.config["MAPS_DIR"]):
        assert Path(folder).resolve().is_relative_to(prefix), folder
    engine = create_engine("sqlite:///artifacts/study.sqlite3")
    with engine.connect() as conn:
        key = conn.execute(text("SELECT public_key FROM studies")).scalar_one()

    def hidden(page):
        return {html.unescape(k): html.unescape(v) for k, v in
                re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}

    client = app.test_client()
    page = client.get(f"/s/{key}/mturk", query_string={
        "workerId": "WHEEL1", "assignmentId": "A1", "hitId": "H1",
        "turkSubmitTo": "https://workersandbox.mturk.com"}).get_data(as_text=True)
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page).group(1))
    r = client.post(action, data={**hidden(page), "agree": "yes"})
    assert r.status_code == 303, r.status_code
    home = r.headers["Location"]
    assert client.post(home + "/start").status_code == 303
    page = client.get(home).get_data(as_text=True)
    assert client.get("/static/style.css").status_code == 200
    shown = 0
    while "Thank you" not in page:
        images = re.findall(r'<img src="(/p/[^"]+)"', page)
        codes = [client.get(html.unescape(u)).status_code for u in images]
        assert images and codes == [200] * len(images), codes
        r = client.post(home + "/answer", data={**hidden(page), "c": "1"})
        assert r.status_code == 200, r.status_code
        page = r.get_data(as_text=True)
        shown += 1
    with engine.connect() as conn:
        votes = conn.execute(text("SELECT count(*) FROM responses")).scalar_one()
    print(json.dumps({"answered": shown, "votes": votes}))
    '''
)


def _copy_sources(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_wheel_installs_anywhere_and_runs_a_whole_survey(tmp_path):
    src, dist, venv, empty = (tmp_path / d for d in ("src", "dist", "venv", "empty"))
    src.mkdir()
    _copy_sources(src)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--disable-pip-version-check", "-q", "-w", str(dist), str(src)])  # fmt: skip
    (wheel,) = dist.glob("normlime_study-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ["study_server/templates/item.html", "study_server/templates/admin/login.html",
                   "study_server/static/style.css", "study_server/static/survey.js",
                   "study_server/migrations/versions/0001_initial.py",
                   "explainers/assets/model/mnist-cnn.pt", "explainers/assets/maps/mnist/maps.npz",
                   "explainers/assets/maps/mnist/manifest.json",
                   "explainers/assets/maps/mnist/png/normlime-0.png",
                   "explainers/_data/mnist-embedded.npz", "explainers/_templates/study.toml",
                   "explainers/projects/mnist/study.toml",
                   "explainers/projects/mnist-demo/study.toml",
                   "analysis/templates/study_report.md.j2", "analysis/templates/report.html.j2",
                   "normlime_cli.py"]:  # fmt: skip
        assert needed in names, needed
    assert not any(n.startswith("tests/") for n in names)

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                      "['purelib'])"]).stdout.strip())  # fmt: skip
    # third-party packages from the test environment, as a plain path entry: its .pth
    # files (the editable install of the checkout) are not processed
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", "--disable-pip-version-check", "-q", str(wheel)])  # fmt: skip

    empty.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "NORMLIME_MAPS", "DATABASE_URL", "VIRTUAL_ENV")}  # fmt: skip
    env["NORMLIME_ADMIN_PASSWORD"] = "a long enough password"
    env["NORMLIME_PARTICIPANT_RATE"] = "100000 per second"  # a machine-speed participant
    env["NORMLIME_IMAGE_RATE"] = "100000 per second"
    up = _run([str(venv / "bin" / "normlime"), "up", "--no-serve"], cwd=empty, env=env)
    assert "created the study 'default'" in up.stdout
    assert str(site) in up.stdout  # the maps served are the installed package's
    script = empty / "survey.py"
    script.write_text(SURVEY)
    out = _run([str(python), str(script), str(venv)], cwd=empty, env=env)
    assert '"answered": 25' in out.stdout and '"votes": 25' in out.stdout
    assert sorted(p.name for p in empty.iterdir()) == ["artifacts", "survey.py"]
