"""Independent loop-by-loop indicators (textbook formulas) to check TA-Lib's values against."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence


def sma(values: Sequence[float], n: int) -> float:
    return sum(values[-n:]) / n


def ema(values: Sequence[float], n: int) -> float:
    alpha = 2 / (n + 1)
    current = sum(values[:n]) / n
    for v in values[n:]:
        current = alpha * v + (1 - alpha) * current
    return current


def ema_series(values: Sequence[float], n: int) -> list[float]:
    alpha = 2 / (n + 1)
    out = [sum(values[:n]) / n]
    for v in values[n:]:
        out.append(alpha * v + (1 - alpha) * out[-1])
    return out


def rsi(closes: Sequence[float], n: int) -> float:
    changes = [b - a for a, b in itertools.pairwise(closes)]
    gain = sum(max(c, 0) for c in changes[:n]) / n
    loss = sum(max(-c, 0) for c in changes[:n]) / n
    for c in changes[n:]:
        gain = (gain * (n - 1) + max(c, 0)) / n
        loss = (loss * (n - 1) + max(-c, 0)) / n
    return 100.0 if loss == 0 else 100 - 100 / (1 + gain / loss)


def macd(closes: Sequence[float], fast: int, slow: int, signal: int) -> tuple[float, float, float]:
    fast_series = ema_series(closes, fast)[slow - fast :]
    slow_series = ema_series(closes, slow)
    line = [f - s for f, s in zip(fast_series, slow_series, strict=True)]
    sig = ema(line, signal)
    return line[-1], sig, line[-1] - sig


def true_ranges(high: Sequence[float], low: Sequence[float], close: Sequence[float]) -> list[float]:
    return [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        for i in range(1, len(close))
    ]


def wilder(values: Sequence[float], n: int) -> list[float]:
    out = [sum(values[:n]) / n]
    for v in values[n:]:
        out.append((out[-1] * (n - 1) + v) / n)
    return out


def atr(high: Sequence[float], low: Sequence[float], close: Sequence[float], n: int) -> float:
    return wilder(true_ranges(high, low, close), n)[-1]


def adx(
    high: Sequence[float], low: Sequence[float], close: Sequence[float], n: int
) -> tuple[float, float, float]:
    plus_dm, minus_dm = [], []
    for i in range(1, len(close)):
        up, down = high[i] - high[i - 1], low[i - 1] - low[i]
        plus_dm.append(up if up > down and up > 0 else 0.0)
        minus_dm.append(down if down > up and down > 0 else 0.0)
    tr = true_ranges(high, low, close)

    def smooth(values: list[float]) -> list[float]:  # Wilder's running sum
        out = [sum(values[:n])]
        for v in values[n:]:
            out.append(out[-1] - out[-1] / n + v)
        return out

    str_, spdm, smdm = smooth(tr), smooth(plus_dm), smooth(minus_dm)
    plus_di = [100 * p / t for p, t in zip(spdm, str_, strict=True)]
    minus_di = [100 * m / t for m, t in zip(smdm, str_, strict=True)]
    dx = [100 * abs(p - m) / (p + m) for p, m in zip(plus_di, minus_di, strict=True)]
    return wilder(dx, n)[-1], plus_di[-1], minus_di[-1]


def bollinger(closes: Sequence[float], n: int, k: float) -> tuple[float, float, float]:
    window = closes[-n:]
    mid = sum(window) / n
    std = math.sqrt(sum((x - mid) ** 2 for x in window) / n)
    return mid + k * std, mid, mid - k * std


def obv(closes: Sequence[float], volumes: Sequence[float]) -> list[float]:
    out = [volumes[0]]
    for i in range(1, len(closes)):
        sign = 1 if closes[i] > closes[i - 1] else -1 if closes[i] < closes[i - 1] else 0
        out.append(out[-1] + sign * volumes[i])
    return out


def vwap(
    high: Sequence[float], low: Sequence[float], close: Sequence[float], volume: Sequence[float], n: int
) -> float:
    typical = [(h + lo + c) / 3 for h, lo, c in zip(high[-n:], low[-n:], close[-n:], strict=True)]
    return sum(t * v for t, v in zip(typical, volume[-n:], strict=True)) / sum(volume[-n:])


def choppiness(high: Sequence[float], low: Sequence[float], close: Sequence[float], n: int) -> float:
    tr_sum = sum(true_ranges(high, low, close)[-n:])
    return 100 * math.log10(tr_sum / (max(high[-n:]) - min(low[-n:]))) / math.log10(n)
