"""Study projects built in a temporary folder through the CLI, as a researcher would."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from normlime_cli import cli


def run_cli(*args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def run_cli_error(*args) -> str:
    """The last line of a failing command (its one-line error) after checking exit code 2."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    return result.output.strip().splitlines()[-1]


def edit(path: Path, *replacements: tuple[str, str]) -> None:
    text = path.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)


def digits_project(root: Path) -> Path:
    """The init-project example (8x8 digits, NormLIME + IG + Saliency), sized for tests."""
    run_cli("init-project", root)
    edit(
        root / "study.toml",
        ("per_class = 40", "per_class = 20"),
        ("epochs = 30", "epochs = 25"),
        ("n_steps = 32", "n_steps = 16"),
    )
    return root
