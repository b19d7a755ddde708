"""The analysis commands: the human study (``analysis.study``) and the numerical
benchmarks (``analysis.benchmarks``), composed into one list for ``normlime``."""

from __future__ import annotations

from .benchmarks.cli import COMMANDS as BENCHMARK_COMMANDS
from .study.cli import COMMANDS as STUDY_COMMANDS

__all__ = ["COMMANDS"]

COMMANDS: list = [*STUDY_COMMANDS, *BENCHMARK_COMMANDS]
