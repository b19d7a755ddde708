"""``normlime power``: simulated power against a closed form, the null, the paper's
effect, the heterogeneity estimate, the cost arithmetic and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import stats

from analysis.study.power import (
    PowerModel,
    estimate_concentration,
    power_search,
    simulate_power,
    study_cost,
)
from analysis.study.simulate import PAPER_PREFERENCES, simulate_export
from analysis.study.votes import METHODS
from normlime_cli import cli


def exact_two_option_power(n: int, p: float, alpha: float) -> float:
    """One question per participant, two options, no heterogeneity, no slot effects: the
    cluster-robust Wald statistic is a function of the vote count x alone,
    z^2 = logit(x/n)^2 (n - 1) q (1 - q) with q = x/n, so power is a finite binomial sum
    (x = 0 or n has no finite estimate and never rejects)."""
    x = np.arange(1, n)
    q = x / n
    z2 = np.log(q / (1 - q)) ** 2 * (n - 1) * q * (1 - q)
    reject = z2 > stats.t.isf(alpha / 2, n - 1) ** 2
    return float(stats.binom.pmf(x, n, p)[reject].sum())


@pytest.mark.parametrize(("n", "p"), [(40, 0.62), (25, 0.7)])
def test_two_option_power_matches_the_closed_form(n, p):
    model = PowerModel(("a", "b"), (p, 1 - p), concentration=None, questions=1, fit_positions=False)
    sims = 4000
    point = simulate_power(model, n, contrast=("a", "b"), simulations=sims, seed=1)
    exact = exact_two_option_power(n, p, 0.05)
    tolerance = 4 * np.sqrt(exact * (1 - exact) / sims)
    assert 0.2 < exact < 0.95
    assert point.contrast_power == pytest.approx(exact, abs=tolerance)
    assert point.omnibus_power == point.contrast_power  # one restriction: F(1, n-1) = t^2


@pytest.mark.parametrize("concentration", [None, 10.0])
def test_equal_shares_reject_at_about_alpha(concentration):
    model = PowerModel(METHODS, (0.25,) * 4, concentration=concentration)
    point = simulate_power(model, 10, contrast=("normlime", "lime"), simulations=2000, seed=2)
    # measured: 4.1-5.2% for n = 5..100; the plain normal / chi-square references gave
    # 7.7% and 18% here
    assert 0.03 <= point.contrast_power <= 0.07
    assert 0.03 <= point.omnibus_power <= 0.07


def test_the_papers_effect_needs_very_few_participants():
    model = PowerModel(METHODS, PAPER_PREFERENCES, concentration=10.0)
    search = power_search(model, contrast=("normlime", "lime"), simulations=300, seed=0)
    assert search.needed_omnibus is not None and search.needed_omnibus <= 12
    assert search.needed_contrast is not None and search.needed_contrast <= 20
    powers = [p.contrast_power for p in search.points]
    assert powers[-1] >= 0.8 and min(powers) < 0.8


def test_a_small_effect_needs_many_and_more_heterogeneity_needs_more():
    shares = (0.28, 0.26, 0.23, 0.23)
    tight = simulate_power(
        PowerModel(METHODS, shares, concentration=None),
        100,
        contrast=("normlime", "lime"),
        simulations=600,
        seed=3,
    )
    loose = simulate_power(
        PowerModel(METHODS, shares, concentration=2.0),
        100,
        contrast=("normlime", "lime"),
        simulations=600,
        seed=3,
    )
    assert loose.contrast_power < tight.contrast_power < 0.8


def test_concentration_is_recovered_from_dirichlet_multinomial_counts():
    rng = np.random.default_rng(0)
    prefs = rng.dirichlet(np.array(PAPER_PREFERENCES) * 10.0, size=4000)
    counts = np.array([rng.multinomial(20, p) for p in prefs])
    assert estimate_concentration(counts) == pytest.approx(10.0, rel=0.15)
    homogeneous = rng.multinomial(20, PAPER_PREFERENCES, size=4000)
    estimate = estimate_concentration(homogeneous)
    assert estimate is None or estimate > 200


def test_cost_is_participants_times_minutes_times_pay_plus_the_fee():
    cost = study_cost(
        83, keep_rate=0.83, pay_per_hour=12.0, minutes_per_survey=10, platform_fee=0.33
    )
    assert cost["participants_to_recruit"] == 100
    assert cost["payments"] == pytest.approx(100 * 10 / 60 * 12)
    assert cost["total"] == pytest.approx(200 * 1.33)


def run(*args):
    return CliRunner().invoke(cli, ["power", *map(str, args)])


def test_power_command_writes_power_json_and_a_curve(tmp_path):
    out = tmp_path / "p"
    result = run(
        "--shares",
        "0.566,0.264,0.079,0.091",
        "--simulations",
        200,
        "--pay-per-hour",
        12,
        "--minutes-per-survey",
        10,
        "--platform-fee",
        0.2,
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    power = json.loads((out / "power.json").read_text())
    assert {"participants_needed", "curve", "contrast", "test", "simulations", "seed"} <= set(power)
    assert power["contrast"] == "normlime:lime" and power["simulations"] == 200
    assert all(set(c) == {"n", "power"} for c in power["curve"])
    assert f"{power['participants_needed']} kept participants" in result.output
    assert power["omnibus"]["participants_needed"] <= power["participants_needed"]
    assert power["cost"]["participants_to_recruit"] == power["participants_needed"]
    with Image.open(out / "power.png") as image:
        assert image.format == "PNG"
    again = run(
        "--shares", "0.566,0.264,0.079,0.091", "--simulations", 200, "--out", tmp_path / "q"
    )
    assert again.exit_code == 0
    assert json.loads((tmp_path / "q" / "power.json").read_text())["curve"] == power["curve"]


def test_power_from_a_pilot(tmp_path):
    pilot = tmp_path / "pilot.csv"
    simulate_export(40, random_state=4, position_logits=(0.5, 0, 0, 0)).to_csv(pilot, index=False)
    result = run("--pilot", pilot, "--simulations", 100, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    power = json.loads((tmp_path / "out" / "power.json").read_text())
    assert power["pilot"]["participants"] == 40 and power["pilot"]["estimated_concentration"]
    assert power["model"]["position_logits"][0] == 0.0
    assert all(v < 0 for v in power["model"]["position_logits"][1:])  # slot 1 favoured
    assert "conditional logit" in power["model"]["source"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shares", "0.5,0.5,0.1,0.1"], "shares must sum to 1"),
        (["--shares", "0.6,0.5,-0.1,0"], "non-negative"),
        (
            ["--shares", "0.25,0.25,0.25,0.25", "--contrast", "normlime:gradcam"],
            "--contrast must name two different methods",
        ),
        (["--shares", "0.5,0.5"], "need one share per method"),
        (["--shares", "a,b,c,d"], "numbers separated by commas"),
        ([], "give exactly one of --pilot"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run(*args, "--out", tmp_path / "o")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "o").exists()


def test_a_pilot_with_fewer_than_5_kept_participants_is_refused(tmp_path):
    pilot = tmp_path / "tiny.csv"
    simulate_export(4, random_state=0, p_incomplete=0).to_csv(pilot, index=False)
    result = run("--pilot", pilot, "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "needs at least 5" in result.output and len(result.output.strip().splitlines()) == 1
