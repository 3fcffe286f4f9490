"""One root settings object, cut by section the way Prefect cuts its own (`triplegain.settings.<section>`).

`Settings` and `load_settings` live in `root`; every section class is importable from here.
"""

from triplegain.settings.analysis import IndicatorSettings, RegimeSettings, TechnicalSettings
from triplegain.settings.backtest import BacktestSettings
from triplegain.settings.bus import BusSettings
from triplegain.settings.decision import (
    ConflictSettings,
    ConsensusSettings,
    DecisionSettings,
    OfflineModelSettings,
)
from triplegain.settings.execution import ExecutionSettings
from triplegain.settings.llm import DEFAULT_PROVIDERS, LLMSettings
from triplegain.settings.market import MarketSettings, SymbolSpec
from triplegain.settings.portfolio import BrokerSettings, HodlSettings, PortfolioSettings
from triplegain.settings.risk import DegradationSettings, LossStreakStep, RiskSettings, WatchSettings
from triplegain.settings.root import SUPPORTED_DRIVERS, Settings, default_database_url, load_settings
from triplegain.settings.sentiment import SentimentSettings

__all__ = [
    "DEFAULT_PROVIDERS",
    "SUPPORTED_DRIVERS",
    "BacktestSettings",
    "BrokerSettings",
    "BusSettings",
    "ConflictSettings",
    "ConsensusSettings",
    "DecisionSettings",
    "DegradationSettings",
    "ExecutionSettings",
    "HodlSettings",
    "IndicatorSettings",
    "LLMSettings",
    "LossStreakStep",
    "MarketSettings",
    "OfflineModelSettings",
    "PortfolioSettings",
    "RegimeSettings",
    "RiskSettings",
    "SentimentSettings",
    "Settings",
    "SymbolSpec",
    "TechnicalSettings",
    "WatchSettings",
    "default_database_url",
    "load_settings",
]
