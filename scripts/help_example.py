"""A worked example of a help study on the MNIST model, taken by SIMULATED participants.

    .venv/bin/python scripts/help_example.py [--participants 60] [--out artifacts/help-example]

(the shipped copy in docs/results/help-example was made with ``--out docs/results/help-example``)

What it does, as a researcher would (each step is a normlime command or the study server):

1. ``normlime make-stimuli --project mnist --data embedded``: 8 learning and 16 test
   images of the embedded MNIST test set, half of them images the shipped CNN gets wrong;
2. a forward-simulation study (``[design] task = "forward"``) with three conditions
   (none, normlime, smoothgrad) in a throw-away SQLite database;
3. SIMULATED participants take it through the real server (Flask's test client): each
   "reads the digit" and answers the image's true label with probability 0.9, otherwise a
   random class, whatever the condition: people who know digits but ignore explanations;
4. ``normlime export-responses``, then ``normlime analyze --responses``.

The point it makes: a participant who only reads the digits is right whenever the model
is, so on items balanced between the model's right and wrong answers they score about 50%
on "what will the model answer?", whatever they are shown, and no condition differs from
the baseline.  A design on the model's (99% right) natural errors would have scored them
near 90% and credited whichever explanation they saw.  These are not data about people.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from click.testing import CliRunner  # noqa: E402

from normlime_cli import cli  # noqa: E402

DESIGN = """
[consent]
researcher = "SIMULATED example"
institution = "normlime-study"
contact = "nobody@example.org"
ethics = "none: simulated participants"
pay = "none"
minutes = 10
keep = "not kept"

[design]
task = "forward"
conditions = ["none", "normlime", "smoothgrad"]
learn_items = 8
test_items = 16
attention_checks = 2
"""


def run(*args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exit_code != 0:
        raise SystemExit(f"normlime {' '.join(map(str, args))} failed:\n{result.output}")
    return result.output


def take_study(url: str, stimuli_dir: Path, n: int, seed: int) -> None:
    from sqlalchemy import create_engine, text

    from explainers.item_stimuli import read_stimuli
    from study_server import create_app

    stimuli = read_stimuli(stimuli_dir)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "STIMULI_DIR": str(stimuli_dir),
                      "PARTICIPANT_RATE": "100000/1", "ENTRY_RATE": "100000/1"})  # fmt: skip
    engine = create_engine(url)
    with engine.connect() as conn:
        key = conn.execute(text("SELECT public_key FROM studies")).scalar_one()
    rng = random.Random(seed)
    n_classes = len(stimuli.class_names)
    for i in range(n):
        client = app.test_client()
        page = client.get(f"/s/{key}/prolific", query_string={
            "PROLIFIC_PID": f"SIM{i:04d}", "STUDY_ID": "EX", "SESSION_ID": f"S{i}"}).get_data(
            as_text=True)  # fmt: skip
        form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page))
        action = re.search(r'<form method="post" action="([^"]+)"', page).group(1)
        home = client.post(action, data={**form, "agree": "yes"}).headers["Location"]
        client.post(home + "/start")
        page = client.get(home).get_data(as_text=True)
        token = home.rsplit("/", 1)[-1]
        while "Thank you" not in page:
            q = int(re.search(r'name="q" value="(\d+)"', page).group(1))
            with engine.connect() as conn:
                stim, phase, target = conn.execute(text(
                    "SELECT i.stimulus, i.phase, i.digit FROM items i JOIN participants p ON "
                    "p.id = i.participant_id WHERE p.token = :t AND i.position = :q"),
                    {"t": token, "q": q}).one()  # fmt: skip
            if phase == "check":
                answer = target  # attentive: does what the check says
            elif rng.random() < 0.9:
                answer = stimuli.item(stim)["label"]  # reads the digit
            else:
                answer = rng.randrange(n_classes)
            fields = dict(re.findall(r'name="([qf])" value="([^"]*)"', page))
            page = client.post(home + "/answer", data={**fields, "c": str(answer + 1)}).get_data(
                as_text=True)  # fmt: skip
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("artifacts/help-example"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stimuli = tmp / "stimuli"
        run("make-stimuli", "--project", "mnist", "--data", "embedded", "--out", stimuli,
            "--learn", "8", "--test", "16", "--seed", args.seed)  # fmt: skip
        url = f"sqlite:///{tmp / 'study.sqlite3'}"
        (tmp / "study.toml").write_text(DESIGN)
        run("init-db", "--db", url)
        run("create-study", "--db", url, "--name", "help-example", "--mode", "sandbox",
            "--adapter", "prolific", "--completion-code", "EXAMPLE", "--config",
            tmp / "study.toml")  # fmt: skip
        take_study(url, stimuli, args.participants, args.seed)
        args.out.mkdir(parents=True, exist_ok=True)
        responses = args.out / "responses-SIMULATED.csv"
        run("export-responses", "--db", url, "--out", responses, "--include-debug")
        analysis = tmp / "analysis"
        run("analyze", "--responses", responses, "--out", analysis, "--mode", "sandbox")
        for path in analysis.iterdir():
            shutil.copy(path, args.out / path.name)
    summary = json.loads((args.out / "summary.json").read_text())
    print(json.dumps(summary.get("accuracy_model"), indent=2))


if __name__ == "__main__":
    main()
