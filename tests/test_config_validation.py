"""Every config input is checked when the config is loaded, before any data is read or model fitted:
one line ``CONFIG: field.path: what is wrong (what was expected)`` per problem (issue 13, item 8)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cbcv.config import load_config, parse_config
from cbcv.core.errors import ConfigError
from cbcv.valuation.inputs import draw_financials
from cbcv.valuation.sensitivity import normalise_shock

HEAD = "company: {name: Acme}\ndata: {source: tx.csv}\ncalibration_end: 2020-06-30\n"
FIN = {
    "contribution_margin": "0.3",
    "discount_rate": "0.1",
    "shares_outstanding": "1000",
}


def config_text(top: str = "", **financials: str) -> str:
    fin = {**FIN, **financials}
    lines = "".join(f"  {k}: {v}\n" for k, v in fin.items() if v is not None)
    return HEAD + top + "financials:\n" + lines


def load_error(tmp_path: Path, text: str | bytes) -> str:
    p = tmp_path / "acme.yaml"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and "\n" not in msg, msg
    return msg.removeprefix(f"{p}: ")


def load_ok(tmp_path: Path, text: str):
    p = tmp_path / "acme.yaml"
    p.write_text(text, encoding="utf-8")
    return load_config(p).config


# -- rates are fractions in their ranges -----------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("discount_rate", "10", r"^financials\.discount_rate: 10 is out of range \(expected 0 < x < 1.*write 0\.1 for 10%"),
        ("contribution_margin", "30", r"^financials\.contribution_margin: 30 .*write 0\.3 for 30%"),
        ("contribution_margin", "-0.2", r"^financials\.contribution_margin: -0\.2 is out of range \(expected 0 < x <= 1"),
        ("contribution_margin", "1.5", r"^financials\.contribution_margin: 1\.5 is out of range"),
        ("contribution_margin", "0", r"^financials\.contribution_margin: 0 is out of range"),
        ("tax_rate", "1.5", r"^financials\.tax_rate: 1\.5 is out of range \(expected 0 <= x < 1"),
        ("tax_rate", "21", r"^financials\.tax_rate: 21 .*write 0\.21 for 21%"),
        ("discount_rate", "0", r"^financials\.discount_rate: 0 is out of range"),
        ("discount_rate", "-0.05", r"^financials\.discount_rate: -0\.05 is out of range"),
        ("discount_rate", "'10%'", r"^financials\.discount_rate: '10%' is not a number \(rates are fractions: write 0\.1 for 10%\)"),
        ("terminal_growth", "2", r"^financials\.terminal_growth: 2 is out of range \(expected x < 0\.5; .*write 0\.02 for 2%"),
    ],
)
def test_rates_outside_their_fraction_range_are_rejected(tmp_path, field, value, expected) -> None:
    assert re.search(expected, load_error(tmp_path, config_text(**{field: value})))


@pytest.mark.parametrize("field", ["acquisition_cost", "fixed_costs", "capex", "non_operating_assets"])
def test_negative_money_inputs_are_rejected_but_net_cash_is_not(tmp_path, field) -> None:
    msg = load_error(tmp_path, config_text(**{field: "-5"}))
    assert msg.startswith(f"financials.{field}: -5 is out of range (expected x >= 0")
    assert load_ok(tmp_path, config_text(net_debt="-250")).financials.net_debt == -250


@pytest.mark.parametrize("log_sd", ["-0.5", "3.5", "50"])
def test_market_size_log_sd_is_bounded(tmp_path, log_sd) -> None:
    msg = load_error(tmp_path, config_text(market_size=f"{{median: 1000, log_sd: {log_sd}}}"))
    assert msg.startswith("financials.market_size.log_sd: "), msg


# -- non-finite numbers, anywhere ------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("financials.shares_outstanding", config_text(shares_outstanding=".inf")),
        ("financials.net_debt", config_text(net_debt=".nan")),
        ("financials.contribution_margin", config_text(contribution_margin=".nan")),
        ("financials.market_price", config_text(market_price="-.inf")),
        ("financials.horizon_years", config_text(horizon_years=".nan")),
        ("financials.contribution_margin.sd", config_text(contribution_margin="{dist: normal, mean: 0.3, sd: .nan}")),
        ("financials.market_size.median", config_text(market_size="{median: .inf}")),
        ("financials.scenarios.up.margin", config_text(scenarios="{up: {margin: .inf}}")),
        ("sampler.target_accept", config_text("sampler: {target_accept: .nan}\n")),
        ("financials.capex", config_text(capex="'nan'")),
    ],
)
def test_non_finite_numbers_are_rejected_naming_the_field(tmp_path, field, text) -> None:
    msg = load_error(tmp_path, text)
    assert msg.startswith(f"{field}: ") and "not a finite number" in msg
    assert "customer" not in msg


# -- distributions: valid parameters, negligible mass outside the valid range ----------------
@pytest.mark.parametrize(
    ("field", "dist", "expected"),
    [
        ("contribution_margin", "{dist: normal, mean: 0.3, sd: 0.2}", "6.7% of the normal distribution"),
        ("discount_rate", "{dist: normal, mean: 0.1, sd: 0.05}", "most of it below 0"),
        ("contribution_margin", "{dist: triangular, low: 0.1, mode: 0.3, high: 1.2}", "most of it above 1"),
        ("acquisition_cost", "{dist: uniform, low: -2, high: 10}", "of the uniform distribution"),
        ("tax_rate", "{dist: beta, alpha: 2, beta: 2, low: 0, high: 1.5}", "of the beta distribution"),
        ("contribution_margin", "{dist: normal, mean: 30, sd: 5}", "write 0.3 for 30%"),
        ("fixed_costs", "{dist: lognormal, mean: -1, sd: 0.1}", "needs a positive mean"),
        ("fixed_costs", "{dist: triangular, low: 0, mode: 5, high: 2}", "low <= mode <= high"),
        ("fixed_costs", "{dist: lognormal, mean: 1, sd: 0.1, low: 0}", "does not use low"),
        ("fixed_costs", "{dist: beta, alpha: 0, beta: 1}", "positive alpha and beta"),
    ],
)
def test_distributions_are_checked_at_load(tmp_path, field, dist, expected) -> None:
    msg = load_error(tmp_path, config_text(**{field: dist}))
    assert msg.startswith(f"financials.{field}: ") and expected in msg, msg


def test_negligible_mass_outside_is_accepted_and_the_draws_stay_inside(tmp_path) -> None:
    # 0.043% of this margin is below 0 and 0.04% of the rate: accepted, and no draw leaves the range
    cfg = load_ok(
        tmp_path,
        config_text(
            contribution_margin="{dist: normal, mean: 0.3, sd: 0.09}",
            discount_rate="{dist: normal, mean: 0.1, sd: 0.0297}",
            tax_rate="{dist: beta, alpha: 2, beta: 8}",
        ),
    )
    fd = draw_financials(cfg.financials, 100_000, seed=1)
    assert fd.contribution_margin.min() > 0 and fd.contribution_margin.max() <= 1
    assert fd.discount_rate.min() > 0
    assert abs(fd.contribution_margin.mean() - 0.3) < 0.002


# -- YAML: encoding, duplicates, ambiguous numbers, nesting, file shape ----------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (config_text(shares_outstanding="010000"), r"^line 7, column 23: 010000 is ambiguous .*octal.*write 10000"),
        (config_text(horizon_years="1:30"), r"^line 8, column 18: 1:30 is ambiguous .*base 60"),
        (HEAD + "seed: 1\nseed: 2\n", r"^line 5, column 1: key 'seed' is given twice"),
        (config_text(discount_rate="0.1\n  discount_rate: 0.2"), r"^line 7, column 3: key 'discount_rate' is given twice"),
        ("company: {name: Caf\xe9}\n".encode("latin-1") + HEAD.encode()[19:], r"^line 1, column 20: byte 0xe9 is not UTF-8"),
        (HEAD + "x: " + "[" * 20_000 + "]" * 20_000 + "\n", r"^line 4, column \d+: nested deeper than 32 levels"),
        ("".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "v: 1\n", r"nested deeper than 32 levels"),
        ("a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + "".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg", strict=True)),
         r"^anchors and aliases expand to more than 100,000 values"),
        ("", r"^the config is empty"),
        ("# only a comment\n", r"^the config is empty"),
        ("- a\n- b\n", r"^expected a mapping of fields at the top level, not a list"),
        ("just text\n", r"^expected a mapping of fields at the top level, not a str"),
        (HEAD + "---\n" + HEAD, r"^not valid YAML at line 4, column 1: but found another document"),
        (HEAD.replace("2020-06-30", "2020-13-45"), r"^line 3, column 18: '2020-13-45' is not a valid date"),
        (HEAD + "x: \x00\n", r"^not valid YAML at line 4: special characters are not allowed"),
    ],
)
def test_file_level_problems_are_one_line(tmp_path, text, expected) -> None:
    msg = load_error(tmp_path, text)
    assert re.search(expected, msg), msg


def test_yaml12_exponent_numbers_are_numbers(tmp_path) -> None:
    cfg = load_ok(tmp_path, config_text(shares_outstanding="2.5e6", fixed_costs="1E3"))
    assert cfg.financials.shares_outstanding == 2.5e6 and cfg.financials.fixed_costs == 1000.0


# -- limits: horizon, seed, sampler ----------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (config_text(horizon_years="1e5"), "financials.horizon_years: 100000 is out of range (expected x <= 100)"),
        (config_text(horizon_years="0"), "financials.horizon_years: 0 is out of range (expected x > 0)"),
        (HEAD + "seed: -1\n", "seed: -1 is out of range (expected x >= 0)"),
        (HEAD + f"seed: {2**32}\n", f"seed: {2**32} is out of range (expected x < {2**32})"),
        (HEAD + "seed: 1.5\n", "seed: Input should be a valid integer"),
        (HEAD + "seed: true\n", "seed: true is not a number"),
        (config_text(shares_outstanding="yes"), "financials.shares_outstanding: true is not a number"),
        (HEAD + "sampler: {draws: 1000000}\n", "sampler.draws: 1000000 is out of range (expected x <= 100000)"),
        (HEAD + "sampler: {chains: 0}\n", "sampler.chains: 0 is out of range (expected x >= 1)"),
    ],
)
def test_numeric_limits(tmp_path, text, expected) -> None:
    assert load_error(tmp_path, text).startswith(expected)


def test_limits_themselves_are_accepted(tmp_path) -> None:
    cfg = load_ok(tmp_path, config_text(f"seed: {2**32 - 1}\n", horizon_years="100"))
    assert cfg.seed == 2**32 - 1 and cfg.financials.horizon_years == 100
    assert load_ok(tmp_path, HEAD + "seed: 0\n").seed == 0


# -- Gordon growth, scenarios ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("fin", "expected"),
    [
        ({"terminal_value": "gordon", "terminal_growth": "0.12"}, "financials.terminal_growth: 0.12 is not below the discount rate"),
        ({"terminal_value": "gordon", "terminal_growth": "0.1"}, "financials.terminal_growth: 0.1 is not below"),
        ({"terminal_growth": "0.1"}, "financials.terminal_growth: 0.1 is not below"),
        ({"terminal_value": "gordon", "terminal_growth": "0.09", "discount_rate": "{dist: uniform, low: 0.08, high: 0.12}"},
         "financials.terminal_growth: 0.09 is not below the discount rate in every draw"),
        ({"terminal_value": "gordon", "cost_growth": "0.11"}, "financials.cost_growth: 0.11 is not below"),
    ],
)
def test_growth_at_or_above_the_discount_rate_is_rejected_even_without_future_customers(tmp_path, fin, expected) -> None:
    assert load_error(tmp_path, config_text(**fin)).startswith(expected)


def test_gordon_growth_below_the_rate_truncates_the_rate_draws(tmp_path) -> None:
    cfg = load_ok(tmp_path, config_text(
        terminal_value="gordon", terminal_growth="0.02", discount_rate="{dist: normal, mean: 0.1, sd: 0.025}"))
    assert draw_financials(cfg.financials, 50_000, seed=3).discount_rate.min() > 0.02


@pytest.mark.parametrize(
    ("scenarios", "expected"),
    [
        ("{up: {retension: 1.05}}", "financials.scenarios.up.retension: unknown sensitivity input 'retension' (did you mean 'retention'?"),
        ("{up: {margin: -1}}", "financials.scenarios.up.margin: -1.0 is not a valid value (expected a factor >= 0"),
        ("{up: {retention: 0}}", "financials.scenarios.up.retention: 0.0 is not a valid value (expected a factor > 0"),
        ("{down: {discount_rate_shift: -0.2}}", "financials.scenarios.down: the discount rate under this scenario is -0.1 outside 0 < x < 1"),
        ("{down: {discount_rate: 20}}", "financials.scenarios.down: the discount rate under this scenario is 2 outside"),
    ],
)
def test_scenarios_name_known_inputs_with_valid_values(tmp_path, scenarios, expected) -> None:
    assert load_error(tmp_path, config_text(scenarios=scenarios)).startswith(expected)


def test_sensitivity_inputs_share_the_check() -> None:
    with pytest.raises(ConfigError, match=r"unknown sensitivity input 'marign' \(did you mean 'margin'\?"):
        normalise_shock({"marign": 1.1})
    assert normalise_shock({"margin": 0.9})["margin"] == 0.9


# -- unknown fields at every level, with a suggestion ----------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + "financial: {}\n", "financial: unknown field (did you mean 'financials'? expected one of company, data,"),
        (HEAD.replace("{source: tx.csv}", "{source: tx.csv, colums: {}}"), "data.colums: unknown field (did you mean 'columns'?"),
        (HEAD + "sampler: {draw: 10}\n", "sampler.draw: unknown field (did you mean 'draws'?"),
        (config_text(discount_rat="0.1"), "financials.discount_rat: unknown field (did you mean 'discount_rate'?"),
        (config_text(contribution_margin="{dist: normal, mean: 0.3, sd: 0.05, sdd: 1}"),
         "financials.contribution_margin.sdd: unknown field (did you mean 'sd'?"),
        (config_text(market_size="{median: 1000, logsd: 1}"), "financials.market_size.logsd: unknown field (did you mean 'log_sd'?"),
    ],
)
def test_unknown_fields_are_rejected_with_did_you_mean(tmp_path, text, expected) -> None:
    assert load_error(tmp_path, text).startswith(expected)


def test_parse_config_applies_the_same_checks() -> None:
    raw = {"company": {"name": "A"}, "data": {"source": "x"}, "calibration_end": "2020-06-30",
           "financials": {"contribution_margin": 0.3, "discount_rate": 10, "shares_outstanding": 1}}
    with pytest.raises(ConfigError, match=r"^x\.yaml: financials\.discount_rate: 10 is out of range"):
        parse_config(raw, "x.yaml")


# -- the CLI fails at once, before any model is imported or fitted ---------------------------
@pytest.mark.parametrize("command", ["value", "report"])
def test_cli_rejects_a_bad_config_before_any_fit(tmp_path, command) -> None:
    cfg = tmp_path / "acme.yaml"
    cfg.write_text(config_text(discount_rate="10"), encoding="utf-8")
    out = tmp_path / "out"
    probe = (
        "import json, sys\n"
        f"sys.argv = ['cbcv', {command!r}, {str(cfg)!r}, '--out', {str(out)!r}]\n"
        "from cbcv import cli\n"
        "try:\n    cli.main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print(json.dumps({'code': code, 'pymc': 'pymc' in sys.modules, 'papermill': 'papermill' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"code": 1, "pymc": False, "papermill": False}
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"cbcv: error: {cfg}: financials.discount_rate: 10 is out of range (expected 0 < x < 1: "
                     "an annual discount rate, a fraction; rates are fractions: write 0.1 for 10%)"]
    assert not out.exists()


def test_whole_config_checks_name_their_field() -> None:
    raw = {"company": {"name": "A"}, "data": {"source": "x"}, "calibration_end": "2020-06-30"}
    with pytest.raises(ConfigError, match=r"^x\.yaml: holdout_end: holdout_end must be after calibration_end$"):
        parse_config({**raw, "holdout_end": "2020-01-01"}, "x.yaml")
    with pytest.raises(ConfigError, match=r"^x\.yaml: as_of: as_of must not be before"):
        parse_config({**raw, "as_of": "2020-01-01"}, "x.yaml")


def test_cli_seed_option_is_range_checked(tmp_path) -> None:
    from typer.testing import CliRunner

    from cbcv import cli

    args = ["fit", "x.csv", "--model", "bgnbd", "--calibration-end", "2020-01-01", "--out", str(tmp_path)]
    for seed in ("-1", str(2**32)):
        res = CliRunner().invoke(cli.app, [*args, "--seed", seed])
        assert res.exit_code == 2 and "--seed" in res.output


# -- data settings (row rules) ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("timezone: Mars/Olympus", r"^data\.timezone: 'Mars/Olympus' is not an IANA time zone"),
        ("earliest_date: 1990-13-01", r"not a valid date"),
        ("null_tokens: unknown", r"^data\.null_tokens: "),
        ("null_tokens: [1, 2]", r"^data\.null_tokens"),
        ("zero_amount_purchases: maybe", r"^data\.zero_amount_purchases: "),
    ],
)
def test_data_row_rule_settings_are_checked_at_load(tmp_path, data, expected) -> None:
    text = config_text().replace("data: {source: tx.csv}", f"data: {{source: tx.csv, {data}}}")
    assert re.search(expected, load_error(tmp_path, text))


def test_data_row_rule_settings_are_read(tmp_path) -> None:
    text = config_text().replace(
        "data: {source: tx.csv}",
        "data: {source: tx.csv, timezone: Asia/Tokyo, earliest_date: 1990-01-01, "
        "null_tokens: [unknown, '?'], zero_amount_purchases: true}",
    )
    data = load_ok(tmp_path, text).data
    assert (data.timezone, str(data.earliest_date)) == ("Asia/Tokyo", "1990-01-01")
    assert (data.null_tokens, data.zero_amount_purchases) == (["unknown", "?"], True)
