"""The web process never imports torch (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from study_server import create_app, schema, studies
    from study_server.recruitment import default_adapters
    from tests.server_fixtures import Server, Walker, image_urls

    url, maps = sys.argv[1], sys.argv[2]
    engine = schema.make_engine(url)
    schema.init_db(engine)
    from sqlalchemy.orm import Session
    with Session(engine) as s, s.begin():
        st = studies.create_study(s, "t", mode="debug", adapters=default_adapters())
        s.flush()
        key, sid, secret = st.public_key, st.id, st.secret
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "MAPS_DIR": maps,
                      "PARTICIPANT_RATE": "100000/1", "IMAGE_RATE": "100000/1"})
    srv = Server(app, engine, url, key, sid, secret, Path(maps))
    w = Walker(srv).begin()
    for _ in range(25):
        for img in image_urls(w.page):
            assert w.client.get(img).status_code == 200
        assert w.answer(2).status_code == 200
    assert "Thank you" in w.page
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "captum"))
    print("HEAVY", heavy)
    assert not heavy, heavy
    """
)


def run_fresh(code: str, *args: str, cwd, timeout: int = 60) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (nothing imported yet); fails the test if it fails."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_create_app_and_a_whole_survey_do_not_import_torch(tmp_path, bundle_dir, repo_root):
    url = f"sqlite:///{tmp_path / 'nt.sqlite3'}"
    proc = run_fresh(SCRIPT, url, str(bundle_dir), cwd=repo_root, timeout=120)
    assert "HEAVY []" in proc.stdout


def test_the_server_commands_load_without_flask_or_torch(repo_root):
    code = (
        "import sys, study_server.cli; "
        "bad = [m for m in ('torch', 'flask', 'sqlalchemy', 'numpy') if m in sys.modules]; "
        "print(bad); assert not bad"
    )
    run_fresh(code, cwd=repo_root)


def test_serve_and_analyze_with_a_project_read_it_without_torch(repo_root, tmp_path):
    """`--project` on the web and analysis commands reads study.toml with tomllib only."""
    (tmp_path / "study.toml").write_text('[project]\nmaps = "out/maps"\n')
    code = (
        "import sys; from explainers.project import project_maps_dir; "
        f"print(project_maps_dir({str(tmp_path)!r})); "
        "import analysis.study.cli; "
        "bad = [m for m in ('torch', 'torchvision', 'captum') if m in sys.modules]; "
        "print(bad); assert not bad"
    )
    proc = run_fresh(code, cwd=repo_root)
    assert str(tmp_path / "out" / "maps") in proc.stdout
