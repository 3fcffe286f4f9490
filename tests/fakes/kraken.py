"""A local fake Kraken: an HTTP server on 127.0.0.1 speaking the part of Kraken's REST API that ccxt uses.

ccxt's `kraken` exchange, its `urls` pointed here, talks to it over real HTTP, so its request signing,
error mapping, timeouts and rate limiter run for real. The server keeps balances, orders and trades; market
orders fill at the pair's price (or partly, when scripted), stop-loss and take-profit orders rest until
`trigger` moves the price through them. Each test scripts faults per API method, used in order:

    with FakeKraken() as kraken:
        kraken.script("AddOrder", Fault.accept_then_time_out(seconds=2))
        kraken.script("QueryOrders", Fault.not_found(), Fault.not_found())
        exchange = kraken.client(timeout_ms=500)     # a ccxt.kraken pointed at the server

Every request is recorded (method name, form fields) for assertions: how many AddOrder calls arrived is how
many orders were sent.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import ccxt
import numpy as np

from triplegain.broker.live import (
    CallBudget,
    LiveBroker,
    MemoryJournal,
    OrderIntent,
    OrderJournal,
    live_client_id,
)
from triplegain.models.enums import Side
from triplegain.models.market import CandleSeries

API_KEY = "fake-kraken-key"
API_SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="  # base64, as Kraken's secrets are
TAKER_FEE_PCT = Decimal("0.26")
# Kraken's own names: XBT for BTC; the pair ids ccxt's markets map to BTC/USDT and XRP/USDT.
PAIRS = {
    "XBTUSDT": {"base": "XXBT", "quote": "USDT", "wsname": "XBT/USDT", "pair_decimals": 1, "lot_decimals": 8},
    "XRPUSDT": {"base": "XXRP", "quote": "USDT", "wsname": "XRP/USDT", "pair_decimals": 5, "lot_decimals": 8},
}
ASSETS = {"XXBT": ("XBT", 10), "XXRP": ("XRP", 8), "USDT": ("USDT", 8)}
CYCLE = "cycle-20240601T1200Z"  # the cycle the broker tests trade in


def market_buy(amount: str = "0.01", purpose: str = "open", cycle: str = CYCLE) -> OrderIntent:
    """A market buy of BTC/USDT as a cycle's broker journals it (its client id from cycle and purpose)."""
    return OrderIntent(
        client_id=live_client_id(cycle, "BTC/USDT", purpose),
        cycle_id=cycle,
        symbol="BTC/USDT",
        side=Side.BUY,
        type="market",
        amount=Decimal(amount),
        purpose=purpose,
    )


@dataclass
class Fault:
    """One scripted misbehaviour of an API method."""

    kind: str  # ok | status | error | accept_then_time_out | not_found | partial
    status: int = 200
    error: str = ""
    seconds: float = 0.0
    fraction: Decimal = Decimal(1)

    @classmethod
    def ok(cls) -> Fault:
        """Answer normally (to script a later call: ok, then a failure)."""
        return cls("ok")

    @classmethod
    def http(cls, status: int) -> Fault:
        """Answer with this HTTP status and an empty body (429 too many requests, 418 banned, 5xx)."""
        return cls("status", status=status)

    @classmethod
    def kraken_error(cls, error: str) -> Fault:
        """A Kraken error answer, e.g. 'EOrder:Insufficient funds' or 'EAPI:Rate limit exceeded'."""
        return cls("error", error=error)

    @classmethod
    def accept_then_time_out(cls, seconds: float) -> Fault:
        """Do what was asked, then hold the reply `seconds` (past the client's timeout): the reply is lost."""
        return cls("accept_then_time_out", seconds=seconds)

    @classmethod
    def not_found(cls) -> Fault:
        """A query answers as if the order did not exist (yet): the exchange has not caught up."""
        return cls("not_found")

    @classmethod
    def partial(cls, fraction: str) -> Fault:
        """A market order fills only `fraction` of its volume now; the rest stays open."""
        return cls("partial", fraction=Decimal(fraction))


@dataclass
class Recorded:
    """A request the server received."""

    method: str
    fields: dict[str, str]


@dataclass
class FakeOrder:
    """An order as the fake exchange keeps it."""

    txid: str
    pair: str
    side: str  # buy | sell
    ordertype: str  # market | limit | stop-loss | take-profit
    volume: Decimal
    price: Decimal | None  # the limit price, or the trigger of a stop-loss / take-profit
    cl_ord_id: str | None
    opened: float
    status: str = "open"  # pending | open | closed | canceled | expired
    vol_exec: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    closed: float | None = None
    trades: list[str] = field(default_factory=list)
    oflags: str = ""  # as sent: fciq / fcib choose the fee's currency
    fee_in_base: bool = False  # how its fills were charged (Kraken: fcib, the default when selling)

    def as_kraken(self) -> dict[str, Any]:
        average = self.cost / self.vol_exec if self.vol_exec else Decimal(0)
        price = f"{self.price}" if self.price is not None else "0"
        return {
            "refid": None,
            "userref": 0,
            "cl_ord_id": self.cl_ord_id,
            "status": self.status,
            "opentm": self.opened,
            "closetm": self.closed,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": self.pair,
                "type": self.side,
                "ordertype": self.ordertype,
                "price": price,
                "price2": "0",
                "leverage": "none",
                "order": _describe(self.side, self.volume, self.pair, self.ordertype, self.price),
                "close": "",
            },
            "vol": f"{self.volume}",
            "vol_exec": f"{self.vol_exec}",
            "cost": f"{self.cost}",
            "fee": f"{self.fee}",
            "price": f"{average}",
            "stopprice": "0",
            "limitprice": "0",
            "misc": "",
            "oflags": "fcib" if self.fee_in_base else "fciq",
            "trades": list(self.trades),
        }


class FakeKraken:
    """The fake exchange and its HTTP server; use as a context manager."""

    def __init__(
        self,
        balances: dict[str, str] | None = None,
        prices: dict[str, str] | None = None,
        candles: dict[str, CandleSeries] | None = None,
    ) -> None:
        self.balances = {k: Decimal(v) for k, v in (balances or {"USDT": "10000"}).items()}
        self.prices = {k: Decimal(v) for k, v in (prices or {"XBTUSDT": "60000", "XRPUSDT": "0.5"}).items()}
        self.candles = dict(candles or {})  # by pair: what the OHLC endpoint serves
        # The exchange's clock for OHLC: set, the endpoint serves as Kraken does, the newest 720 candles
        # opened by then (whatever `since` asks for older); None, the first 720 after `since`.
        self.now: datetime | None = None
        # True: fees as exchanges charging the asset received do (Binance): a buy's in the base asset, a
        # sale's in the quote, whatever the order's oflags ask (reported as Kraken reports fcib and fciq)
        self.fees_in_received_asset = False
        self.orders: dict[str, FakeOrder] = {}
        self.trades: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- scripting and inspection -------------------------------------------------------------------
    def script(self, method: str, *faults: Fault) -> None:
        """Faults for the next calls of an API method (e.g. 'AddOrder', 'QueryOrders', 'BalanceEx')."""
        with self._lock:
            self._faults[method].extend(faults)

    def calls(self, method: str) -> list[Recorded]:
        """The requests of one API method received so far."""
        with self._lock:
            return [r for r in self.requests if r.method == method]

    def set_price(self, pair: str, price: str) -> list[str]:
        """Move a pair's price; resting stop-loss and take-profit orders it crosses fill. Returns their
        txids."""
        with self._lock:
            self.prices[pair] = Decimal(price)
            return self._trigger(pair)

    def add_order(
        self,
        pair: str,
        side: str,
        ordertype: str,
        volume: str,
        price: str | None = None,
        cl_ord_id: str | None = None,
        oflags: str = "",
    ) -> str:
        """An order placed outside the system under test (by hand on the website, by another program)."""
        with self._lock:
            return self._add(
                pair,
                side,
                ordertype,
                Decimal(volume),
                Decimal(price) if price else None,
                cl_ord_id,
                oflags=oflags,
            )

    @property
    def url(self) -> str:
        assert self._server is not None, "the server is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def live_broker(
        self,
        journal: OrderJournal | None = None,
        sleep: Callable[[float], None] | None = None,
        timeout_ms: int = 2000,
    ) -> LiveBroker:
        """A `LiveBroker` on this exchange that never waits: its budget's and backoff's sleeps go to `sleep`
        (recorded by a test, or dropped)."""
        nap = sleep or (lambda seconds: None)
        exchange = self.client(timeout_ms)
        return LiveBroker(exchange, journal or MemoryJournal(), budget=CallBudget(sleep=nap), sleep=nap)

    def client(self, timeout_ms: int = 2000, **options: Any) -> Any:
        """A ccxt.kraken pointed at this server, with the fake's keys."""
        exchange = ccxt.kraken(
            {
                "apiKey": API_KEY,
                "secret": API_SECRET,
                "timeout": timeout_ms,
                "enableRateLimit": False,
                **options,
            }
        )
        exchange.urls["api"] = {"public": self.url, "private": self.url}
        return exchange

    # --- server ---------------------------------------------------------------------------------------
    def __enter__(self) -> FakeKraken:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                fake._serve(self, parsed.path, query)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode()
                if self.headers.get("content-type", "").startswith("application/json"):
                    form = {k: str(v) for k, v in json.loads(raw or "{}").items()}
                else:
                    form = {k: v[0] for k, v in parse_qs(raw).items()}
                if self.headers.get("API-Key") != API_KEY:
                    fake._reply(self, {"error": ["EAPI:Invalid key"]})
                    return
                fake._serve(self, urlparse(self.path).path, form)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _reply(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a scripted lost reply)

    def _serve(self, handler: BaseHTTPRequestHandler, path: str, fields: dict[str, str]) -> None:
        method = path.rsplit("/", 1)[-1]
        with self._lock:
            self.requests.append(Recorded(method, dict(fields)))
            fault = self._faults[method].popleft() if self._faults[method] else None
        if fault is not None and fault.kind == "status":
            handler.send_response(fault.status)
            handler.send_header("content-length", "0")
            handler.end_headers()
            return
        if fault is not None and fault.kind == "error":
            self._reply(handler, {"error": [fault.error]})
            return
        answer = getattr(self, f"_api_{method}", None)
        if answer is None:
            self._reply(handler, {"error": [f"EGeneral:Unknown method {method}"]})
            return
        with self._lock:
            try:
                result = answer(fields, fault)
            except _KrakenError as e:
                body: dict[str, Any] = {"error": [str(e)]}
            else:
                body = {"error": [], "result": result}
        if fault is not None and fault.kind == "accept_then_time_out":
            time.sleep(fault.seconds)
        self._reply(handler, body)

    # --- the API ----------------------------------------------------------------------------------------
    def _api_Time(self, fields: dict[str, str], fault: Fault | None) -> Any:
        now = time.time()
        return {
            "unixtime": int(now),
            "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now)),
        }

    def _api_SystemStatus(self, fields: dict[str, str], fault: Fault | None) -> Any:
        return {"status": "online", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def _api_Assets(self, fields: dict[str, str], fault: Fault | None) -> Any:
        return {
            code: {
                "aclass": "currency",
                "altname": alt,
                "decimals": d,
                "display_decimals": min(d, 5),
                "status": "enabled",
            }
            for code, (alt, d) in ASSETS.items()
        }

    def _api_AssetPairs(self, fields: dict[str, str], fault: Fault | None) -> Any:
        return {
            pair: {
                "altname": pair,
                "wsname": p["wsname"],
                "aclass_base": "currency",
                "base": p["base"],
                "aclass_quote": "currency",
                "quote": p["quote"],
                "lot": "unit",
                "cost_decimals": 5,
                "pair_decimals": p["pair_decimals"],
                "lot_decimals": p["lot_decimals"],
                "lot_multiplier": 1,
                "leverage_buy": [],
                "leverage_sell": [],
                "fees": [[0, float(TAKER_FEE_PCT)]],
                "fees_maker": [[0, 0.16]],
                "fee_volume_currency": "ZUSD",
                "margin_call": 80,
                "margin_stop": 40,
                "ordermin": "0.00005" if pair == "XBTUSDT" else "10",
                "costmin": "0.5",
                "tick_size": "0.1" if pair == "XBTUSDT" else "0.00001",
                "status": "online",
            }
            for pair, p in PAIRS.items()
        }

    def _api_Ticker(self, fields: dict[str, str], fault: Fault | None) -> Any:
        pairs = fields.get("pair", ",".join(PAIRS)).split(",")
        out = {}
        for pair in pairs:
            price = f"{self.prices[pair]}"
            out[pair] = {
                "a": [price, "1", "1.000"],
                "b": [price, "1", "1.000"],
                "c": [price, "0.1"],
                "v": ["10", "10"],
                "p": [price, price],
                "t": [1, 1],
                "l": [price, price],
                "h": [price, price],
                "o": price,
            }
        return out

    def _held(self, asset: str) -> Decimal:
        """What open limit sells hold of `asset` (Kraken's hold_trade); trigger orders hold nothing."""
        return sum(
            (
                o.volume - o.vol_exec
                for o in self.orders.values()
                if o.status == "open"
                and o.side == "sell"
                and o.ordertype == "limit"
                and PAIRS[o.pair]["base"] == asset
            ),
            Decimal(0),
        )

    def _available(self, asset: str) -> Decimal:
        return self.balances.get(asset, Decimal(0)) - self._held(asset)

    def _api_OHLC(self, fields: dict[str, str], fault: Fault | None) -> Any:
        """Hourly candles after `since`, at most 720 (Kraken's cap), as Kraken lists them; with a clock
        (`now`), only the newest 720 opened by then, as Kraken serves: older ones cannot be had."""
        pair = fields["pair"]
        series = self.candles.get(pair)
        if series is None:
            raise _KrakenError("EQuery:Unknown asset pair")
        since = int(fields.get("since", 0))
        if self.now is not None:
            newest = series.slice(0, int(np.searchsorted(series.timestamps, self.now.timestamp(), "right")))
            series = newest.slice(max(0, len(newest) - 720), len(newest))
        rows = [
            [int(t), f"{o}", f"{h}", f"{lo}", f"{c}", f"{c}", f"{v}", 1]
            for t, o, h, lo, c, v in zip(
                series.timestamps,
                series.open,
                series.high,
                series.low,
                series.close,
                series.volume,
                strict=True,
            )
            if t > since
        ][:720]
        return {pair: rows, "last": rows[-1][0] if rows else since}

    def _api_BalanceEx(self, fields: dict[str, str], fault: Fault | None) -> Any:
        return {
            asset: {"balance": f"{amount}", "hold_trade": f"{self._held(asset)}"}
            for asset, amount in self.balances.items()
        }

    def _api_AddOrder(self, fields: dict[str, str], fault: Fault | None) -> Any:
        pair, side, ordertype = fields["pair"], fields["type"], fields["ordertype"]
        if pair not in PAIRS:
            raise _KrakenError("EQuery:Unknown asset pair")
        cl_ord_id = fields.get("cl_ord_id")
        if cl_ord_id is not None and not _valid_client_id(cl_ord_id):
            raise _KrakenError("EGeneral:Invalid arguments:cl_ord_id")
        if cl_ord_id and any(o.cl_ord_id == cl_ord_id and o.status == "open" for o in self.orders.values()):
            raise _KrakenError("EOrder:Duplicate order")  # Kraken refuses a client id among open orders
        price = Decimal(fields["price"]) if "price" in fields else None
        volume = Decimal(fields["volume"])
        base = PAIRS[pair]["base"]
        if side == "sell" and ordertype in ("market", "limit") and volume > self._available(base):
            raise _KrakenError("EOrder:Insufficient funds")  # trigger orders hold nothing until triggered
        fraction = fault.fraction if fault is not None and fault.kind == "partial" else Decimal(1)
        txid = self._add(pair, side, ordertype, volume, price, cl_ord_id, fraction, fields.get("oflags", ""))
        return {
            "descr": {"order": _describe(side, Decimal(fields["volume"]), pair, ordertype, price)},
            "txid": [txid],
        }

    def _api_QueryOrders(self, fields: dict[str, str], fault: Fault | None) -> Any:
        if fault is not None and fault.kind == "not_found":
            return {}
        wanted = [t for t in fields.get("txid", "").split(",") if t]
        cl = fields.get("cl_ord_id")
        return {
            t: o.as_kraken()
            for t, o in self.orders.items()
            if (t in wanted) or (cl is not None and o.cl_ord_id == cl)
        }

    def _listed(self, fields: dict[str, str], fault: Fault | None, is_open: bool) -> dict[str, Any]:
        if fault is not None and fault.kind == "not_found":
            return {}
        cl = fields.get("cl_ord_id")
        return {
            t: o.as_kraken()
            for t, o in self.orders.items()
            if (o.status == "open") == is_open and (cl is None or o.cl_ord_id == cl)
        }

    def _api_OpenOrders(self, fields: dict[str, str], fault: Fault | None) -> Any:
        return {"open": self._listed(fields, fault, True)}

    def _api_ClosedOrders(self, fields: dict[str, str], fault: Fault | None) -> Any:
        closed = self._listed(fields, fault, False)
        return {"closed": closed, "count": len(closed)}

    def _api_CancelOrder(self, fields: dict[str, str], fault: Fault | None) -> Any:
        wanted = fields.get("txid") or fields.get("cl_ord_id")
        order = self.orders.get(wanted or "") or next(
            (o for o in self.orders.values() if o.cl_ord_id == wanted), None
        )
        if order is None:
            raise _KrakenError("EOrder:Unknown order")
        if order.status == "open":
            order.status, order.closed = "canceled", time.time()
        return {"count": 1}

    def _api_TradesHistory(self, fields: dict[str, str], fault: Fault | None) -> Any:
        return {"trades": dict(self.trades), "count": len(self.trades)}

    # --- the matching engine ----------------------------------------------------------------------------
    def _add(
        self,
        pair: str,
        side: str,
        ordertype: str,
        volume: Decimal,
        price: Decimal | None,
        cl_ord_id: str | None,
        fraction: Decimal = Decimal(1),
        oflags: str = "",
    ) -> str:
        txid = f"O{next(self._ids):05d}-FAKE-KRKN"
        order = FakeOrder(txid, pair, side, ordertype, volume, price, cl_ord_id, time.time(), oflags=oflags)
        self.orders[txid] = order
        if ordertype == "market":
            self._fill(order, (volume * fraction).quantize(Decimal("1e-8")), self.prices[pair])
        else:
            self._trigger(pair)
        return txid

    def _trigger(self, pair: str) -> list[str]:
        filled = []
        price = self.prices[pair]
        for order in list(self.orders.values()):
            if (
                order.pair != pair
                or order.status != "open"
                or order.ordertype == "market"
                or order.price is None
            ):
                continue
            below = price <= order.price
            hit = {
                ("sell", "stop-loss"): below,
                ("sell", "take-profit"): not below or price == order.price,
                ("buy", "stop-loss"): not below or price == order.price,
                ("buy", "take-profit"): below,
                ("buy", "limit"): below,
                ("sell", "limit"): not below or price == order.price,
            }[(order.side, order.ordertype)]
            if hit:
                self._fill(order, order.volume - order.vol_exec, price)
                filled.append(order.txid)
        return filled

    def _fill(self, order: FakeOrder, volume: Decimal, price: Decimal) -> None:
        if volume <= 0:
            return
        base, quote = PAIRS[order.pair]["base"], PAIRS[order.pair]["quote"]
        cost = (volume * price).quantize(Decimal("1e-8"))
        fee = (cost * TAKER_FEE_PCT / 100).quantize(Decimal("1e-8"))
        sign = 1 if order.side == "buy" else -1
        if order.side == "buy" and self.balances.get(quote, Decimal(0)) < cost + fee:
            order.status, order.closed = "canceled", time.time()  # Kraken cancels what it cannot pay for
            return
        if order.side == "sell" and self.balances.get(base, Decimal(0)) < volume:
            order.status, order.closed = "canceled", time.time()
            return
        # Kraken's fee currency: fcib prefers the base, fciq the quote; without either, the base when
        # selling (when the base left covers it) and the quote when buying
        fee_base = (volume * TAKER_FEE_PCT / 100).quantize(Decimal("1e-8"))
        prefers_base = "fcib" in order.oflags or (order.side == "sell" and "fciq" not in order.oflags)
        order.fee_in_base = prefers_base and self.balances.get(base, Decimal(0)) - volume >= fee_base
        if self.fees_in_received_asset:
            order.fee_in_base = order.side == "buy"
        if order.fee_in_base:
            fee = fee_base
        self.balances[base] = self.balances.get(base, Decimal(0)) + sign * volume
        if order.fee_in_base:
            self.balances[base] -= fee
        self.balances[quote] = (
            self.balances.get(quote, Decimal(0)) - sign * cost - (Decimal(0) if order.fee_in_base else fee)
        )
        trade_id = f"T{next(self._ids):05d}-FAKE-KRKN"
        self.trades[trade_id] = {
            "ordertxid": order.txid,
            "postxid": "",
            "pair": order.pair,
            "time": time.time(),
            "type": order.side,
            "ordertype": order.ordertype,
            "price": f"{price}",
            "cost": f"{cost}",
            "fee": f"{fee}",
            "vol": f"{volume}",
            "margin": "0",
            "misc": "",
        }
        order.vol_exec += volume
        order.cost += cost
        order.fee += fee
        order.trades.append(trade_id)
        if order.vol_exec >= order.volume:
            order.status, order.closed = "closed", time.time()


def _describe(side: str, volume: Decimal, pair: str, ordertype: str, price: Decimal | None) -> str:
    """Kraken's one-line description, e.g. 'sell 0.01000000 XBTUSDT @ stop loss 55000.0' (ccxt parses it)."""
    kind = ordertype.replace("-", " ")
    return f"{side} {volume:.8f} {pair} @ {kind}" + (f" {price}" if price is not None else "")


def _valid_client_id(value: str) -> bool:
    """Kraken's cl_ord_id: a UUID (with or without dashes) or free text of up to 18 ASCII characters."""
    hex_only = value.replace("-", "")
    if len(hex_only) == 32 and all(c in "0123456789abcdefABCDEF" for c in hex_only):
        return True
    return len(value) <= 18 and value.isascii()


class _KrakenError(Exception):
    """An error Kraken answers in its `error` list."""


def killed_when(
    command: list[str], env: dict[str, str], cwd: Path, ready: Callable[[], bool], timeout: float
) -> str:
    """Run `command`, SIGKILL it the moment `ready()` holds (checked every 50 ms), and return its output.
    Fails the test when it ends, or `timeout` passes, first: it was never killed where the test meant.
    What it started is killed with it (its process group: a temporary Prefect server would outlive it)."""
    output = cwd / f"killed-{time.monotonic_ns()}.log"
    with output.open("w") as log:
        run = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while not ready() and run.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ready(), f"never ready to be killed: {output.read_text()}"
            run.send_signal(signal.SIGKILL)
            assert run.wait(timeout=10) == -signal.SIGKILL
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    return output.read_text()
