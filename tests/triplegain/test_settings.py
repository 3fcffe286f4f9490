from decimal import Decimal
from pathlib import Path

import pytest

from triplegain.errors import ConfigError
from triplegain.models.enums import Regime
from triplegain.settings import default_database_url, load_settings


def test_defaults_are_the_reference_numbers() -> None:
    s = load_settings()

    assert s.market.symbols == ["BTC/USDT", "XRP/USDT"]
    assert s.broker.initial_balances == {"USDT": Decimal(10_000)}
    assert s.broker.fee_pct == Decimal("0.26")
    assert s.risk.max_position_pct == Decimal(20)
    assert s.risk.max_total_exposure_pct == Decimal(80)
    assert s.risk.daily_loss_pct == Decimal(5)
    assert s.regime.min_change_confidence == 0.7
    assert s.regime.change_periods == 2
    assert s.decision.min_quorum == 4
    assert s.regime.parameters[Regime.CHOPPY].max_leverage == 1


def test_the_fallback_resolver_starts_two_seconds_into_the_budget_by_default() -> None:
    c = load_settings().conflicts

    assert c.resolution_budget_seconds == 10  # the reference's budget
    assert (
        c.resolution_budget_seconds * c.hedge_after_share == 2
    )  # was 5 s: a hanging primary now costs ~2.2 s


def test_default_database_is_sqlite_in_user_data_dir() -> None:
    assert default_database_url().startswith("sqlite:///")
    assert default_database_url().endswith("triplegain.db")


def test_environment_overrides_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPLEGAIN_RISK__MAX_LEVERAGE", "3")
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", "postgresql+psycopg://u:p@localhost/tg")

    s = load_settings()

    assert s.risk.max_leverage == 3
    assert s.database_url.get_secret_value() == "postgresql+psycopg://u:p@localhost/tg"


def test_yaml_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "tg.yaml"
    config.write_text("risk:\n  max_leverage: 2\n  daily_loss_pct: 3\nmarket:\n  symbols: [BTC/USDT]\n")
    monkeypatch.setenv("TRIPLEGAIN_RISK__DAILY_LOSS_PCT", "4")

    s = load_settings(config)

    assert s.risk.max_leverage == 2
    assert s.risk.daily_loss_pct == Decimal(4)
    assert s.market.symbols == ["BTC/USDT"]


def test_targets_not_summing_to_100_name_key_value_and_rule() -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(portfolio={"target_pct": {"BTC": 50, "XRP": 40}})

    problem = e.value.problems[0]
    assert problem.key == "portfolio.target_pct"
    assert "sum to 100" in problem.allowed
    assert "portfolio.target_pct" in str(e.value)


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"risk\.max_drawdown_pct=-1.*greater than 0"):
        load_settings(risk={"max_drawdown_pct": -1})


def test_unknown_symbol_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"market\.symbols.*DOGE/USDT.*allowed are \['BTC/USDT', 'XRP/USDT'\]"
    ):
        load_settings(market={"symbols": ["DOGE/USDT"]})


def test_malformed_database_url_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"database_url='not a url'.*not a database URL"):
        load_settings(database_url="not a url")


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://tg:hunter2@db:notaport/tg", "postgresql+psycopg://tg:hunter2@[::1/tg"]
)
def test_an_unparseable_database_url_is_a_config_error_naming_the_key(url: str) -> None:
    with pytest.raises(ConfigError, match=r"database_url=.*not a database URL") as e:
        load_settings(database_url=url)

    assert "hunter2" not in str(e.value)


def test_a_port_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"database_url=.*port 99999999 is out of range"):
        load_settings(database_url="postgresql+psycopg://tg@db:99999999/tg")


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "my.yaml"
    path.write_text("risk:\n  daily_loss_pct: 3\nmarket:\n  symbols: [BTC/USDT, XRP/USDT\n")

    with pytest.raises(ConfigError, match=r"config_file='.*my.yaml:5' is invalid: valid YAML \(") as e:
        load_settings(path)

    assert "\n" not in str(e.value)


def test_yaml_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "my.yaml"
    path.write_bytes(b"risk:\n  daily_loss_pct: 3 # \xff\n")

    with pytest.raises(ConfigError, match=r"my.yaml:2' is invalid: UTF-8 text \(byte 0xff\)"):
        load_settings(path)


def test_unsupported_driver_is_refused_and_password_hidden() -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(database_url="mysql://root:hunter2@db/tg")

    assert "hunter2" not in str(e.value)
    assert "mysql" in str(e.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(risk={"max_leverage": 0}, broker={"fee_pct": -1})

    assert {p.key for p in e.value.problems} == {"risk.max_leverage", "broker.fee_pct"}


def test_missing_yaml_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config_file"):
        load_settings(tmp_path / "absent.yaml")


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"risk\.max_levrage"):
        load_settings(risk={"max_levrage": 2})


def test_database_url_is_secret_in_repr() -> None:
    s = load_settings(database_url="postgresql+psycopg://u:hunter2@h/db")

    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.model_dump())


@pytest.mark.parametrize(
    ("overrides", "reported"),
    [
        ({"risk": {"max_leverage": 1000}}, r"risk\.max_leverage=1000 is invalid: .*less than or equal to 5"),
        (
            {"risk": {"regime_max_leverage": {"choppy": 20}}},
            r"risk\.regime_max_leverage\.choppy=20 .*equal to 5",
        ),
        ({"conflicts": {"max_leverage": 6}}, r"conflicts\.max_leverage=6 .*less than or equal to 5"),
        ({"risk": {"max_position_pct": 150}}, r"risk\.max_position_pct=150 .*less than or equal to 100"),
        ({"risk": {"drawdown_leverage_limits": {"150": 1}}}, r"drawdown_leverage_limits\.150.*equal to 100"),
        (
            {"portfolio": {"hodl": {}, "min_trade_usd": -5}},
            r"portfolio\.min_trade_usd=-5 .*greater than or equal",
        ),
        ({"broker": {"fee_pct": -0.1}}, r"broker\.fee_pct=-0\.1 .*greater than or equal to 0"),
        ({"llm": {"budget_per_day_usd": -1}}, r"llm\.budget_per_day_usd=-1 .*greater than or equal to 0"),
        (
            {"risk": {"post_loss_cooldown_minutes": 10**9}},
            r"post_loss_cooldown_minutes=1000000000 .*less than",
        ),
    ],
)
def test_every_limit_is_bounded_at_load(overrides: dict[str, object], reported: str) -> None:
    with pytest.raises(ConfigError, match=reported):
        load_settings(**overrides)
