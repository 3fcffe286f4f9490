"""One root settings object: every threshold named, with the reference system's defaults.

Sources, highest priority first: keyword arguments, environment variables (prefix `TRIPLEGAIN_`, nested
keys joined by `__`, e.g. `TRIPLEGAIN_RISK__MAX_LEVERAGE=3`), an optional YAML file (`TRIPLEGAIN_CONFIG_FILE`
or `load_settings(path)`), then the defaults below. Invalid values fail at load with a `ConfigError` that
names the key, the value and what is allowed.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from platformdirs import user_data_dir
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from triplegain.errors import ConfigError, ConfigProblem
from triplegain.settings.analysis import IndicatorSettings, RegimeSettings, TechnicalSettings
from triplegain.settings.backtest import BacktestSettings
from triplegain.settings.bus import BusSettings
from triplegain.settings.decision import ConflictSettings, ConsensusSettings, DecisionSettings
from triplegain.settings.execution import ExecutionSettings
from triplegain.settings.llm import LLMSettings
from triplegain.settings.market import MarketSettings
from triplegain.settings.portfolio import BrokerSettings, HodlSettings, PortfolioSettings
from triplegain.settings.risk import DegradationSettings, RiskSettings, WatchSettings
from triplegain.settings.sentiment import SentimentSettings

SUPPORTED_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


def default_database_url() -> str:
    """An SQLite file in the per-user data directory."""
    return f"sqlite:///{Path(user_data_dir('triplegain', appauthor=False)) / 'triplegain.db'}"


_yaml_path: ContextVar[Path | None] = ContextVar("triplegain_yaml_path", default=None)


class _YamlSource(PydanticBaseSettingsSource):
    """Settings from the YAML file given to `load_settings` or named by TRIPLEGAIN_CONFIG_FILE."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _yaml_path.get() or _env_yaml_path()
        if path is None:
            return {}
        if not path.is_file():
            raise ConfigError([ConfigProblem("config_file", str(path), "a readable YAML file")])
        data = _read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError([ConfigProblem("config_file", str(path), "a YAML mapping at the top level")])
        return data


def _read_yaml(path: Path) -> Any:
    """The YAML document in `path`; ConfigError naming the file and line of the first problem."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            [ConfigProblem("config_file", f"{path}:{line}", f"UTF-8 text (byte 0x{raw[e.start]:02x})")]
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        column = f", column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError([ConfigProblem("config_file", where, f"valid YAML ({problem}{column})")]) from None


def _env_yaml_path() -> Path | None:
    value = os.environ.get("TRIPLEGAIN_CONFIG_FILE")
    return Path(value) if value else None


class Settings(BaseSettings):
    """Everything TripleGain can be configured with; build it once per run with `load_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix="TRIPLEGAIN_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database_url: SecretStr = Field(
        default_factory=lambda: SecretStr(default_database_url()),
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user:pass@host/db",
    )
    sqlite_busy_timeout_ms: int = Field(5_000, ge=0)
    statement_timeout_ms: int = Field(30_000, ge=0, description="PostgreSQL statement timeout")
    market: MarketSettings = Field(default_factory=MarketSettings)
    indicators: IndicatorSettings = Field(default_factory=IndicatorSettings)
    technical: TechnicalSettings = Field(default_factory=TechnicalSettings)
    regime: RegimeSettings = Field(default_factory=RegimeSettings)
    decision: DecisionSettings = Field(default_factory=DecisionSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    portfolio: PortfolioSettings = Field(default_factory=PortfolioSettings)
    hodl: HodlSettings = Field(default_factory=HodlSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    consensus: ConsensusSettings = Field(default_factory=ConsensusSettings)
    conflicts: ConflictSettings = Field(default_factory=ConflictSettings)
    sentiment: SentimentSettings = Field(default_factory=SentimentSettings)
    degradation: DegradationSettings = Field(default_factory=DegradationSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)

    @field_validator("database_url")
    @classmethod
    def _url_supported(cls, url: SecretStr) -> SecretStr:
        try:
            parsed = make_url(url.get_secret_value())
        except (ArgumentError, ValueError):  # a port that is not a number raises ValueError
            raise ValueError(
                "not a database URL; expected sqlite:///path or postgresql+psycopg://user:pass@host:5432/db"
            ) from None
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise ValueError(f"port {parsed.port} is out of range (1 to 65535)")
        if parsed.drivername not in SUPPORTED_DRIVERS:
            raise ValueError(
                f"driver {parsed.drivername!r} unsupported; allowed: {', '.join(SUPPORTED_DRIVERS)}"
            )
        return url

    @model_validator(mode="after")
    def _trend_emas_computed(self) -> Settings:
        t = self.technical
        missing = {t.fast_ema, t.slow_ema, t.long_ema} - set(self.indicators.ema_periods)
        if missing:
            raise ValueError(f"technical EMAs {sorted(missing)} are not in indicators.ema_periods")
        return self

    @model_validator(mode="after")
    def _targets_tradable(self) -> Settings:
        quote = "USDT"
        unknown = [
            a
            for a in self.portfolio.target_pct
            if a != quote and f"{a}/{quote}" not in self.market.symbol_specs
        ]
        if unknown:
            raise ValueError(
                f"portfolio.target_pct assets {unknown} have no {quote} pair in market.symbol_specs; "
                f"known: {sorted(self.market.symbol_specs)}"
            )
        if quote not in self.portfolio.target_pct:
            raise ValueError(f"portfolio.target_pct must include the quote currency {quote}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings from overrides, environment, YAML and defaults; raise ConfigError if invalid."""
    token = _yaml_path.set(Path(config_file) if config_file is not None else None)
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError([_problem(err) for err in e.errors()]) from None
    finally:
        _yaml_path.reset(token)


def _safe_url(value: object) -> str:
    """A database URL fit for an error message: the password masked, or all of it if unparseable."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    try:
        return make_url(text).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<hidden>" if "@" in text else text


def _problem(error: Any) -> ConfigProblem:
    key = ".".join(str(part) for part in error["loc"]) or "settings"
    value = error.get("input")
    if key == "database_url":
        value = _safe_url(value)
    message = str(error["msg"]).removeprefix("Value error, ")
    return ConfigProblem(key, value, message)
