"""``SolanaTrader``: one agent's trades, from risk checks to a confirmed, audited swap.

``execute_trade(token_in, token_out, amount, key=…)``:

1. resolve the tokens; if ``key`` was seen before, return (or reconcile) that trade;
2. risk rules before any quote (:func:`~puppet_engine.solana.risk.check_trade`);
3. Jupiter quote, then the quote rules (slippage, price impact);
4. the ``trades`` row is written (``pending``); Jupiter builds the swap; the wallet
   signs; the signature and ``lastValidBlockHeight`` are saved *before* sending;
5. simulate (``dry-run`` stops here); send with ``skipPreflight``; status ``sent``;
6. confirm: poll the signature until *confirmed* or the blockhash expires, reading
   the on-chain error (solana-py's ``confirm_transaction`` would not raise on one);
   then record fee and the amount actually received.

Confirmation polls wait in real time (``confirm_poll_seconds``), not on the injected
clock: they wait on a node, and under ``simulate`` the virtual clock only moves
between events, so sleeping on it inside a trade would never end.

A trade is never sent twice: the key is unique, the signed transaction's signature
is stored before it leaves, and the only resend is a rebroadcast of the identical
bytes (same signature) when the first send's reply was lost. After a crash,
:meth:`reconcile` settles ``pending``/``sent`` rows from the chain.

Errors before the row exists (prices, quote) propagate as ``ProviderError`` so the
caller may retry with the same key; rejections are recorded and returned; after the
row exists every outcome is recorded and returned as a :class:`TradeResult`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog
from solders.pubkey import Pubkey
from solders.signature import Signature

from puppet_engine.clock import Clock
from puppet_engine.errors import ProviderError, TradeRejected
from puppet_engine.events import Action, ActionExecutor, ActionOutcome
from puppet_engine.runtime_settings import RuntimeSettings
from puppet_engine.solana.jupiter import JupiterAPI, Quote
from puppet_engine.solana.market import MarketAnalysis, MarketData, TradeIdea, decide_trade
from puppet_engine.solana.risk import (
    REQUEST_SOURCES,
    RequestSource,
    RiskContext,
    RiskLimits,
    TradeRequest,
    check_quote,
    check_trade,
    token_allowed,
)
from puppet_engine.solana.tokens import SOL_MINT, TokenInfo, TokenRegistry
from puppet_engine.solana.wallet import SolanaWallet
from puppet_engine.storage import Database
from puppet_engine.storage.repos import facts, trades

log = structlog.get_logger("puppet_engine.solana.trader")

TradeStatus = Literal["rejected", "pending", "sent", "confirmed", "failed", "dry-run"]
AmountUnit = Literal["input", "sol"]  # what a trade's amount counts: whole input tokens, or SOL's worth of them
OPEN_STATUSES = ("pending", "sent")
COUNTED_STATUSES = ("pending", "sent", "confirmed")  # what daily limits count


@dataclass(frozen=True)
class TradeResult:
    """The outcome of one trade, as recorded in ``trades``."""

    key: str
    status: str
    input_mint: str
    output_mint: str
    input_symbol: str
    output_symbol: str
    in_amount: int | None = None  # raw units
    out_amount: int | None = None  # raw units: received if confirmed, else quoted
    amount_in: float | None = None  # whole units
    amount_out: float | None = None
    amount_sol: float | None = None
    signature: str | None = None
    rule: str | None = None
    error: str | None = None
    fee_lamports: int | None = None
    reasoning: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("confirmed", "dry-run")

    def summary(self) -> str:
        amounts = f"{_fmt(self.amount_in)} {self.input_symbol} → {_fmt(self.amount_out)} {self.output_symbol}"
        if self.status == "rejected":
            return f"trade rejected ({self.rule}): {self.input_symbol} → {self.output_symbol}: {self.error}"
        if self.status == "failed":
            return f"trade failed: {amounts}: {self.error}"
        return f"{'swapped' if self.status == 'confirmed' else self.status}: {amounts}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.6g}"


class SolanaTrader:
    """Trades for one agent through Jupiter, within its :class:`RiskLimits`."""

    def __init__(self, agent_id: str, wallet: SolanaWallet, jupiter: JupiterAPI, db: Database, *,
                 limits: RiskLimits, clock: Clock, registry: TokenRegistry | None = None,
                 mode: Literal["live", "dry-run"] | None = None, runtime: RuntimeSettings | None = None,
                 timezone: str = "UTC", simulate: bool = True,
                 confirm_poll_seconds: float = 0.5, max_confirm_polls: int = 600,
                 factors: Sequence[str] = ("trending_tokens", "top_gainers"), random_probability: float = 0.2,
                 market: MarketData | None = None) -> None:
        self.agent_id = agent_id
        self.wallet = wallet
        self.jupiter = jupiter
        self.db = db
        self.limits = limits
        self.clock = clock
        self.registry = registry or TokenRegistry.for_network("mainnet-beta")
        self.own_mode = mode  # the agent file's; None = the engine's
        self.runtime = runtime  # live: PUT /config {"trading_mode": ...} acts before the next send
        self.tz = ZoneInfo(timezone)
        self.simulate = simulate
        self.confirm_poll_seconds = confirm_poll_seconds
        self.max_confirm_polls = max_confirm_polls
        self.factors = tuple(factors)
        self.random_probability = random_probability
        self.market = market or MarketData(db, jupiter, clock)

    @property
    def mode(self) -> Literal["live", "dry-run"]:
        """``dry-run`` when the agent's file or the engine's live setting says so (dry-run wins)."""
        engine = self.runtime.trading_mode if self.runtime is not None else "live"
        return "dry-run" if "dry-run" in (self.own_mode, engine) else "live"

    def __repr__(self) -> str:
        return f"SolanaTrader({self.agent_id!r}, {self.wallet!r}, mode={self.mode})"

    # -- the engine's entry points ---------------------------------------------------

    async def analyze_market(self) -> MarketAnalysis:
        """Sample prices of the tokens this agent may trade (plus candidates) and analyse them."""
        tokens = {t.mint: t for t in self.registry}
        return await self.market.analyze(list(tokens.values()))

    async def consider_trade(self, rng: random.Random, *, key: str, reasoning: str = "") -> TradeResult | None:
        """Analyse, decide (:func:`decide_trade`) and, if there is an idea, execute it under ``key``."""
        existing = await self._load(key)
        if existing is not None:
            return await self._settle_existing(existing)
        analysis = await self.analyze_market()
        idea = decide_trade(analysis, self.limits, await self.wallet.balances(), rng, factors=self.factors,
                            random_probability=self.random_probability)
        if idea is None:
            return None
        return await self.execute_idea(idea, key=key, reasoning=reasoning)

    async def execute_idea(self, idea: TradeIdea, *, key: str, reasoning: str = "") -> TradeResult:
        why = f"{reasoning} {idea.reason}".strip()
        return await self.execute_trade(idea.token_in, idea.token_out, idea.amount, key=key, reasoning=why)

    async def execute_trade(self, token_in: str, token_out: str, amount: float, *, key: str | None = None,
                            source: RequestSource = "autonomous", reasoning: str = "",
                            unit: AmountUnit = "input") -> TradeResult:
        """Swap ``amount`` of ``token_in`` (symbol or mint) into ``token_out``; see the module doc.

        ``unit`` says what ``amount`` counts: whole units of ``token_in`` (``"input"``), or
        SOL (``"sol"``): that much SOL's worth of ``token_in`` at the market price, rejected
        (rule ``no_price``) when the token has none. ``source`` is recorded with the trade's
        checks and decides the ``human_request`` rule.
        """
        key = key or self._default_key(token_in, token_out, amount)
        existing = await self._load(key)
        if existing is not None:
            return await self._settle_existing(existing)
        tin, tout = await self._resolve(token_in), await self._resolve(token_out)
        base: dict[str, Any] = {"key": key, "agent_id": self.agent_id, "reasoning": reasoning or None,
                "input_mint": tin.mint if tin else token_in[:64], "output_mint": tout.mint if tout else token_out[:64]}
        if tin is None or tout is None:
            missing = token_in if tin is None else token_out
            return await self._reject(base, "unknown_token", f"unknown token {missing!r}",
                                      {"source": source, "checks": []})
        if unit == "sol" and tin.mint != SOL_MINT:
            in_sol = amount
            sized = await self._input_for_sol(tin, in_sol)
            if sized is None:
                return await self._reject(base, "no_price", f"{in_sol} SOL of {tin.symbol}: {tin.symbol} has no "
                                          "price to size the trade with", {"source": source, "checks": []})
            amount = sized
        base["in_amount"] = str(max(0, tin.to_raw(amount))) if amount > 0 else "0"
        request, ctx = await self._context(tin, tout, amount, source)
        base["amount_sol"] = request.amount_sol
        decision = check_trade(request, self.limits, ctx)
        checks: dict[str, Any] = {"source": source, "checks": decision.to_json()}
        if not decision.ok:
            return await self._reject(base, decision.failed.rule, decision.failed.detail, checks)  # type: ignore[union-attr]
        try:
            quote = await self.jupiter.quote(tin.mint, tout.mint, tin.to_raw(amount),
                                             slippage_bps=self.limits.max_slippage_bps)
        except TradeRejected as exc:
            return await self._reject(base, exc.rule, str(exc), checks)
        quote_decision = check_quote(quote.slippage_bps, quote.price_impact_pct, self.limits)
        checks["checks"] += quote_decision.to_json()
        base.update(quote=quote.raw, out_amount=str(quote.out_amount), checks=checks)
        if not quote_decision.ok:
            failed = quote_decision.failed
            assert failed is not None
            return await self._reject(base, failed.rule, failed.detail, checks)
        await self._insert({**base, "status": "pending"})
        return await self._swap_and_send(key, quote)

    async def risk_preview(self, token_in: str, token_out: str, amount: float, *, unit: AmountUnit = "input",
                           source: RequestSource = "autonomous") -> tuple[float | None, list[dict[str, Any]]]:
        """What a trade would be worth in SOL (None: unpriced) and how the risk rules judge it now,
        without quoting or sending anything (what a reviewer sees beside a trade)."""
        tin, tout = await self._resolve(token_in), await self._resolve(token_out)
        if tin is None or tout is None:
            return None, [{"rule": "unknown_token", "passed": False, "detail": f"unknown token {token_in!r} or {token_out!r}"}]
        in_sol: float | None = None
        if unit == "sol" and tin.mint != SOL_MINT:
            in_sol, amount = amount, await self._input_for_sol(tin, amount) or 0.0
        request, ctx = await self._context(tin, tout, amount, source)
        worth = in_sol if in_sol is not None else request.amount_sol
        return worth, check_trade(request, self.limits, ctx).to_json()

    async def reconcile(self) -> list[TradeResult]:
        """Settle this agent's trades left ``pending``/``sent`` (after a crash) from the chain."""
        rows = await trades.with_status(self.db, self.agent_id, OPEN_STATUSES)
        return [await self._settle_existing(row) for row in rows]

    async def reconcile_trade(self, key: str) -> TradeResult | None:
        row = await self._load(key)
        return None if row is None else await self._settle_existing(row)

    async def recent_trades(self, limit: int = 20) -> list[TradeResult]:
        return [self._result(row) for row in await trades.latest(self.db, self.agent_id, limit)]

    # -- steps -----------------------------------------------------------------------

    async def _resolve(self, name: str) -> TokenInfo | None:
        known = self.registry.get(name)
        if known is not None:
            return known
        try:
            mint = Pubkey.from_string(name.strip())
        except ValueError:
            return None
        info = await self.wallet.rpc.mint_info(mint)
        if info is None:
            return None
        token = TokenInfo(str(mint)[:6], str(mint), info[0], info[1])
        self.registry.add(token)
        return token

    async def _input_for_sol(self, tin: TokenInfo, amount_sol: float) -> float | None:
        """How many whole ``tin`` are worth ``amount_sol`` SOL at the market price, or None unpriced."""
        prices = await self.jupiter.prices([tin.mint, SOL_MINT])
        p_in, p_sol = prices.get(tin.mint), prices.get(SOL_MINT)
        if not p_in or not p_sol or p_in.usd_price <= 0 or p_sol.usd_price <= 0:
            return None
        return amount_sol * p_sol.usd_price / p_in.usd_price

    async def _context(self, tin: TokenInfo, tout: TokenInfo, amount: float,
                       source: RequestSource) -> tuple[TradeRequest, RiskContext]:
        balances = await self.wallet.balances()
        amount_sol: float | None = amount if tin.mint == SOL_MINT else None
        trending: frozenset[str] = frozenset()
        needs_trending = self.limits.consider_trending or self.limits.require_trending_validation
        if amount_sol is None or needs_trending:
            analysis = await self.analyze_market() if needs_trending else None
            if analysis is not None:
                trending = frozenset(analysis.trending)
            if amount_sol is None:
                prices = await self.jupiter.prices([tin.mint, SOL_MINT])
                p_in, p_sol = prices.get(tin.mint), prices.get(SOL_MINT)
                if p_in and p_sol and p_sol.usd_price > 0:
                    amount_sol = amount * p_in.usd_price / p_sol.usd_price
        count, volume = await self._today()
        held = balances.amount(tin.mint)
        return (TradeRequest(tin, tout, amount, amount_sol, source),
                RiskContext(balances.sol, held, count, volume, trending))

    async def _today(self) -> tuple[int, float]:
        now = self.clock.now()
        local = datetime.fromtimestamp(now, self.tz)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        return await trades.count_and_volume(self.db, self.agent_id, start, COUNTED_STATUSES)

    async def _swap_and_send(self, key: str, quote: Quote) -> TradeResult:
        if self.runtime is not None:
            try:  # another process may have switched to dry-run: never send on a stale mode
                await self.runtime.refresh()
            except Exception as exc:
                return await self._finish(key, "failed", error=f"runtime settings unreadable, not sent: "
                                                                f"{type(exc).__name__}")
        try:
            swap = await self.jupiter.swap(quote, self.wallet.address)
            signed = self.wallet.sign(swap.transaction)
        except (ProviderError, TradeRejected) as exc:
            return await self._finish(key, "failed", error=f"swap build failed: {exc}")
        signature = signed.signatures[0]
        await self._update(key, signature=str(signature), last_valid_block_height=swap.last_valid_block_height)
        simulation: dict[str, Any] | None = None
        if self.simulate or self.mode == "dry-run":
            try:
                report = await self.wallet.rpc.simulate(signed)
            except ProviderError as exc:
                return await self._finish(key, "failed", error=f"simulation unavailable, not sent: {exc}")
            simulation = report.to_json()
            await self._update(key, simulation=simulation)
            if report.err is not None:
                return await self._finish(key, "failed", error=f"simulation failed, not sent: "
                                                                f"{_describe(report.err, report.logs)}")
        if self.mode == "dry-run":
            return await self._finish(key, "dry-run")
        delivered = True
        try:
            await self.wallet.rpc.send(signed)
        except ProviderError as exc:
            delivered = False  # the node may or may not have it: confirm, rebroadcasting the same bytes
            log.warning("trade_send_unacknowledged", agent_id=self.agent_id, trade_key=key, error=str(exc))
        else:
            await self._update(key, status="sent")
        return await self._confirm(key, signature, swap.last_valid_block_height, resend=None if delivered else signed)

    async def _confirm(self, key: str, signature: Signature, last_valid: int | None, resend: Any = None) -> TradeResult:
        failures = 0
        for attempt in range(self.max_confirm_polls):
            try:
                state = await self.wallet.rpc.signature_state(signature)
                if state is not None and state.confirmed:  # success or failure, once it cannot roll back
                    return await self._landed(key, signature, state.err)
                if state is None:
                    height = await self.wallet.rpc.block_height()
                    if last_valid is not None and height > last_valid:
                        return await self._finish(key, "failed", error="expired: the blockhash expired before the "
                                                                       "transaction landed; nothing was traded")
                    if resend is not None and attempt % 4 == 0:
                        await self.wallet.rpc.send(resend)  # identical bytes: it can land at most once
                failures = 0
            except ProviderError as exc:
                failures += 1
                log.warning("trade_confirm_poll_failed", agent_id=self.agent_id, trade_key=key, error=str(exc),
                            failures=failures)
            await asyncio.sleep(self.confirm_poll_seconds)  # real time: we wait on a node, not a schedule
        return self._result(await self._load(key))  # still unknown: left for reconcile()

    async def _landed(self, key: str, signature: Signature, err: Any) -> TradeResult:
        fee, received, logs = None, None, []
        tx = None
        for _ in range(3):  # a node may index the transaction a moment after reporting its status
            try:
                tx = await self.wallet.rpc.transaction(signature)
            except ProviderError:
                tx = None
            if tx is not None:
                break
            await asyncio.sleep(self.confirm_poll_seconds)
        row = await self._load(key)
        if tx is not None:
            meta = tx.transaction.meta
            fee = meta.fee
            logs = list(meta.log_messages or [])
            received = self._received(row["output_mint"], meta) if err is None else None
        values: dict[str, Any] = {"fee_lamports": fee}
        if received is not None:
            values["out_amount"] = str(received)
        if logs:
            values["simulation"] = {**(row["simulation"] or {}), "landed_logs": logs[-40:]}
        if err is not None:
            return await self._finish(key, "failed", error=f"failed on chain: {_describe(err, logs)}", **values)
        return await self._finish(key, "confirmed", **values)

    def _received(self, output_mint: str, meta: Any) -> int | None:
        owner = self.wallet.public_key
        if output_mint == SOL_MINT:
            return meta.post_balances[0] - meta.pre_balances[0] + meta.fee  # the fee payer is the wallet
        def total(balances: Any) -> int:
            return sum(int(b.ui_token_amount.amount) for b in balances or []
                       if str(b.mint) == output_mint and b.owner == owner)
        return total(meta.post_token_balances) - total(meta.pre_token_balances)

    async def _settle_existing(self, row: Any) -> TradeResult:
        if row["status"] not in OPEN_STATUSES:
            return self._result(row)
        if not row["signature"]:
            return await self._finish(row["key"], "failed", error="interrupted before signing; nothing was sent")
        return await self._confirm(row["key"], Signature.from_string(row["signature"]),
                                   row["last_valid_block_height"])

    # -- storage ---------------------------------------------------------------------

    def _default_key(self, token_in: str, token_out: str, amount: float) -> str:
        digest = hashlib.sha256(f"{token_in}|{token_out}|{amount}|{int(self.clock.now())}".encode()).hexdigest()
        return f"trade:{self.agent_id}:{digest[:16]}"

    async def _load(self, key: str) -> Any:
        return await trades.by_key(self.db, key)

    async def _insert(self, values: dict[str, Any]) -> None:
        await trades.insert(self.db, values, self.clock.now())

    async def _update(self, key: str, **values: Any) -> None:
        await trades.update(self.db, key, self.clock.now(), **values)

    async def _reject(self, base: dict[str, Any], rule: str, detail: str, checks: Any) -> TradeResult:
        await self._insert({**base, "status": "rejected", "rule": rule, "error": detail,
                            "checks": checks or base.get("checks")})
        log.info("trade_rejected", agent_id=self.agent_id, trade_key=base["key"], rule=rule, detail=detail)
        return self._result(await self._load(base["key"]))

    async def _finish(self, key: str, status: TradeStatus, *, error: str | None = None, **values: Any) -> TradeResult:
        await self._update(key, status=status, error=error, **values)
        if status == "confirmed":
            await self._record_balances()
        result = self._result(await self._load(key))
        log.info("trade_" + status.replace("-", "_"), agent_id=self.agent_id, trade_key=key,
                 signature=result.signature, summary=result.summary())
        return result

    async def _record_balances(self) -> None:
        """The history's fact of the wallet after a trade (left out when the node cannot say)."""
        try:
            held = await self.wallet.balances()
        except ProviderError as exc:
            log.warning("balances_after_trade_unread", agent_id=self.agent_id, error=str(exc))
            return
        tokens = {mint: t.ui_amount for mint, t in held.tokens.items()}
        await facts.record(self.db, [facts.fact(self.agent_id, "balances", {"sol": held.sol, "tokens": tokens},
                                                self.clock.now())])

    def _result(self, row: Any) -> TradeResult:
        tin, tout = self.registry.get(row["input_mint"]), self.registry.get(row["output_mint"])
        in_raw = int(row["in_amount"]) if row["in_amount"] not in (None, "") else None
        out_raw = int(row["out_amount"]) if row["out_amount"] not in (None, "") else None
        return TradeResult(
            key=row["key"], status=row["status"], input_mint=row["input_mint"], output_mint=row["output_mint"],
            input_symbol=tin.symbol if tin else self.registry.symbol_of(row["input_mint"]),
            output_symbol=tout.symbol if tout else self.registry.symbol_of(row["output_mint"]),
            in_amount=in_raw, out_amount=out_raw,
            amount_in=tin.from_raw(in_raw) if tin and in_raw is not None else None,
            amount_out=tout.from_raw(out_raw) if tout and out_raw is not None else None,
            amount_sol=row["amount_sol"], signature=row["signature"], rule=row["rule"], error=row["error"],
            fee_lamports=row["fee_lamports"], reasoning=row["reasoning"],
        )


def _describe(err: Any, logs: Sequence[str]) -> str:
    text = json.dumps(err)
    joined = " ".join(logs)
    if "SlippageToleranceExceeded" in joined or '"Custom": 6001' in text:
        return f"slippage tolerance exceeded ({text})"
    if "insufficient" in joined.lower():
        return f"insufficient funds ({text})"
    return text


class TradeExecutor(ActionExecutor):
    """Outbox executor for ``trade`` actions: payload ``{"input", "output", "amount", "reasoning"?}``."""

    outage_wait = 600.0  # RPC or Jupiter down longer than this: the trade is dropped, not made on stale ideas

    def __init__(self, trader: SolanaTrader) -> None:
        self.trader = trader

    async def execute(self, action: Action) -> ActionOutcome:
        p = action.payload
        source = p.get("source", "autonomous")
        if source not in REQUEST_SOURCES:
            source = "human"  # an unknown origin is treated as the least trusted one
        unit: AmountUnit = "sol" if p.get("unit") == "sol" else "input"
        result = await self.trader.execute_trade(p["input"], p["output"], float(p["amount"]), key=action.key,
                                                 reasoning=p.get("reasoning", ""), source=source, unit=unit)
        return ActionOutcome(external_id=result.signature, result=result.to_json())

    async def reconcile(self, action: Action) -> ActionOutcome | None:
        result = await self.trader.reconcile_trade(action.key)
        if result is None:
            return None  # no trade row: nothing was sent, safe to execute
        return ActionOutcome(external_id=result.signature, result=result.to_json())


def allowed_symbols(trader: SolanaTrader, trending: frozenset[str] = frozenset()) -> list[str]:
    """Symbols this trader may buy right now (for prompts and dashboards)."""
    return [t.symbol for t in trader.registry if token_allowed(t, trader.limits, trending)]
