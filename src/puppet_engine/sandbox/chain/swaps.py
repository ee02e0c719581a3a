"""Routing, quoting and swap transactions over the sandbox pools.

A route is one pool, or two through SOL or USDC. ``/swap`` re-prices the quoted
route at build time and builds a real v0 transaction whose only signer is the user
(also the fee payer). For each hop the pool's output is moved from its vault into a
fresh escrow token account owned by the pool authority, with the user as SPL
*delegate* for exactly that amount; the user then signs every ``TransferChecked``:
their input into the first vault, each escrow onward. Escrows of transactions that
never land are swept back into their vault once the blockhash has expired.

If the price moved past the quote's ``otherAmountThreshold`` the transaction is
still built, but asks the last escrow for more than it holds, so it fails on chain
(``InstructionError [i, Custom 1]``, insufficient funds) as a slippage failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import Instruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.instructions import (
    close_account,
    create_idempotent_associated_token_account,
    get_associated_token_address,
    sync_native,
    transfer_checked,
)
from spl.token.models import CloseAccountParams, SyncNativeParams, TransferCheckedParams

from puppet_engine.sandbox.chain.market import Market, Pool, derived_key
from puppet_engine.solana.tokens import SOL_MINT, USDC_MINT

DEFAULT_CU_LIMIT = 1_400_000
DEFAULT_CU_PRICE = 1_000  # micro-lamports per compute unit ("auto")


class QuoteError(Exception):
    """Jupiter's 400 answer: ``{"error": message, "errorCode": code}``."""

    def __init__(self, message: str, code: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status

    def body(self) -> dict[str, str]:
        return {"error": self.message, "errorCode": self.code} if self.code else {"error": self.message}


@dataclass
class Hop:
    pool: Pool
    input_mint: str
    output_mint: str
    in_amount: int
    out_amount: int
    fee_amount: int


@dataclass
class Route:
    hops: list[Hop]
    price_impact: float  # fraction 0..1

    @property
    def in_amount(self) -> int:
        return self.hops[0].in_amount

    @property
    def out_amount(self) -> int:
        return self.hops[-1].out_amount


def paths(market: Market, a: str, b: str, only_direct: bool = False) -> list[list[Pool]]:
    found = [[p] for p in market.pools_between(a, b)]
    if only_direct:
        return found
    for middle in (SOL_MINT, USDC_MINT):
        if middle in (a, b):
            continue
        for first in market.pools_between(a, middle):
            for second in market.pools_between(middle, b):
                found.append([first, second])
    return found


def _out_given_in(x: int, y: int, amount: int, fee_bps: int) -> tuple[int, int]:
    fee = math.ceil(amount * fee_bps / 10_000)
    net = amount - fee
    return (y * net) // (x + net) if net > 0 else 0, fee


def _in_given_out(x: int, y: int, out: int, fee_bps: int) -> tuple[int, int]:
    if out >= y:
        raise QuoteError("Could not find any route", "COULD_NOT_FIND_ANY_ROUTE")
    net = -(-x * out // (y - out))
    gross = -(-net * 10_000 // (10_000 - fee_bps)) + 1  # +1 absorbs the fee's rounding up
    return gross, math.ceil(gross * fee_bps / 10_000)


def price_route(market: Market, pools: list[Pool], input_mint: str, amount: int, exact_out: bool) -> Route:
    """Amounts through ``pools`` at current reserves (``amount`` is in for ExactIn, out for ExactOut)."""
    mints = [input_mint]
    for pool in pools:
        mints.append(pool.other(mints[-1]))
    hops: list[Hop] = []
    spot = 1.0
    if exact_out:
        need = amount
        for i in reversed(range(len(pools))):
            x, y = market.reserves(pools[i], mints[i])
            gross, fee = _in_given_out(x, y, need, pools[i].fee_bps)
            hops.insert(0, Hop(pools[i], mints[i], mints[i + 1], gross, need, fee))
            spot *= y / x
            need = gross
    else:
        carry = amount
        for i, pool in enumerate(pools):
            x, y = market.reserves(pool, mints[i])
            out, fee = _out_given_in(x, y, carry, pool.fee_bps)
            hops.append(Hop(pool, mints[i], mints[i + 1], carry, out, fee))
            spot *= y / x
            carry = out
    fee_factor = math.prod(1 - p.fee_bps / 10_000 for p in pools)
    ideal = hops[0].in_amount * fee_factor * spot
    impact = max(0.0, 1.0 - hops[-1].out_amount / ideal) if ideal > 0 else 1.0
    return Route(hops, impact)


def best_route(market: Market, input_mint: str, output_mint: str, amount: int, *, exact_out: bool = False,
               only_direct: bool = False) -> Route:
    candidates = []
    for pools in paths(market, input_mint, output_mint, only_direct):
        try:
            route = price_route(market, pools, input_mint, amount, exact_out)
        except QuoteError:
            continue
        if route.out_amount > 0 and route.in_amount > 0:
            candidates.append(route)
    if not candidates:
        raise QuoteError("Could not find any route", "COULD_NOT_FIND_ANY_ROUTE")
    if exact_out:
        return min(candidates, key=lambda r: r.in_amount)
    return max(candidates, key=lambda r: r.out_amount)


@dataclass
class SwapRequest:
    user: Pubkey
    input_mint: str
    output_mint: str
    in_amount: int
    out_amount: int
    threshold: int
    exact_out: bool
    pools: list[Pool]
    wrap_unwrap_sol: bool = True
    destination: Pubkey | None = None
    cu_limit: int = DEFAULT_CU_LIMIT
    cu_price: int = DEFAULT_CU_PRICE


@dataclass
class Escrow:
    address: Pubkey
    vault: Pubkey
    mint: str
    last_valid_block_height: int


@dataclass
class BuiltSwap:
    transaction: VersionedTransaction
    last_valid_block_height: int
    route: Route
    slippage_exceeded: bool


class SwapBuilder:
    """Builds swap transactions and keeps the escrows they draw from."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.ledger = market.ledger
        self.escrows: list[Escrow] = []
        self.counter = 0

    def sweep(self) -> None:
        """Return what expired escrows still hold to their vaults, and close them."""
        height = self.ledger.block_height
        keep = []
        for escrow in self.escrows:
            if height <= escrow.last_valid_block_height:
                keep.append(escrow)
                continue
            left = self.ledger.token_amount(escrow.address)
            if left:
                pool_vault = escrow.vault
                owner = self._owner(pool_vault)
                balance = self.ledger.token_amount(pool_vault) + left
                self.ledger.write_token_account(pool_vault, Pubkey.from_string(escrow.mint), owner, balance)
            self.ledger.close_account(escrow.address)
        self.escrows = keep

    def _owner(self, vault: Pubkey) -> Pubkey:
        pool = next(p for p in self.market.pools if vault in (p.base_vault, p.quote_vault))
        return pool.authority

    def build(self, req: SwapRequest) -> BuiltSwap:
        route = price_route(self.market, req.pools, req.input_mint,
                            req.out_amount if req.exact_out else req.in_amount, req.exact_out)
        exceeded = route.in_amount > req.threshold if req.exact_out else route.out_amount < req.threshold
        blockhash, last_valid = self.ledger.latest_blockhash()
        escrows = [self._open_escrow(hop, req.user, last_valid) for hop in route.hops]
        ixs = self._instructions(req, route, escrows, exceeded)
        msg = MessageV0.try_compile(req.user, ixs, [], blockhash)
        tx = VersionedTransaction.populate(msg, [Signature.default()])
        return BuiltSwap(tx, last_valid, route, exceeded)

    def _open_escrow(self, hop: Hop, user: Pubkey, last_valid: int) -> Escrow:
        self.counter += 1
        address = derived_key("escrow", self.ledger.seed, self.counter, user)
        vault = hop.pool.vault_for(hop.output_mint)
        mint = Pubkey.from_string(hop.output_mint)
        remaining = self.ledger.token_amount(vault) - hop.out_amount
        self.ledger.write_token_account(vault, mint, hop.pool.authority, remaining)
        self.ledger.write_token_account(address, mint, hop.pool.authority, hop.out_amount,
                                        delegate=user, delegated_amount=hop.out_amount)
        escrow = Escrow(address, vault, hop.output_mint, last_valid)
        self.escrows.append(escrow)
        return escrow

    def _program(self, mint: str) -> Pubkey:
        account = self.ledger.account(Pubkey.from_string(mint))
        assert account is not None
        return account.owner

    def _instructions(self, req: SwapRequest, route: Route, escrows: list[Escrow], exceeded: bool) -> list[Instruction]:
        user = req.user
        in_mint, out_mint = Pubkey.from_string(req.input_mint), Pubkey.from_string(req.output_mint)
        in_prog, out_prog = self._program(req.input_mint), self._program(req.output_mint)
        user_in = get_associated_token_address(user, in_mint, in_prog)
        user_out = req.destination or get_associated_token_address(user, out_mint, out_prog)
        wrap = req.wrap_unwrap_sol and req.input_mint == SOL_MINT
        unwrap = req.wrap_unwrap_sol and req.output_mint == SOL_MINT and req.destination is None
        ixs = [set_compute_unit_limit(req.cu_limit), set_compute_unit_price(req.cu_price)]
        if wrap:
            ixs.append(create_idempotent_associated_token_account(user, user, in_mint, in_prog))
        if req.destination is None:
            ixs.append(create_idempotent_associated_token_account(user, user, out_mint, out_prog))
        first = route.hops[0]
        if wrap:
            ixs.append(transfer(TransferParams(from_pubkey=user, to_pubkey=user_in, lamports=first.in_amount)))
            ixs.append(sync_native(SyncNativeParams(program_id=in_prog, account=user_in)))
        ixs.append(self._transfer(req.input_mint, user_in, first.pool.vault_for(req.input_mint), user,
                                  first.in_amount))
        for i, hop in enumerate(route.hops):
            escrow = escrows[i]
            if i + 1 < len(route.hops):
                nxt = route.hops[i + 1]
                ixs.append(self._transfer(hop.output_mint, escrow.address, nxt.pool.vault_for(hop.output_mint),
                                          user, hop.out_amount))
                continue
            amount = hop.out_amount
            if exceeded:
                ixs.append(_memo(f"SlippageToleranceExceeded (6001): out {hop.out_amount} < minimum {req.threshold}"
                                 if not req.exact_out else
                                 f"SlippageToleranceExceeded (6001): in {route.in_amount} > maximum {req.threshold}"))
                amount = max(req.threshold, hop.out_amount + 1) if not req.exact_out else hop.out_amount + 1
            ixs.append(self._transfer(hop.output_mint, escrow.address, user_out, user, amount))
        if wrap or unwrap:
            wsol = get_associated_token_address(user, Pubkey.from_string(SOL_MINT), self._program(SOL_MINT))
            ixs.append(close_account(CloseAccountParams(program_id=self._program(SOL_MINT), account=wsol,
                                                        dest=user, owner=user)))
        return ixs

    def _transfer(self, mint: str, source: Pubkey, dest: Pubkey, owner: Pubkey, amount: int) -> Instruction:
        token = self.market.tokens[mint].info
        return transfer_checked(TransferCheckedParams(
            program_id=self._program(mint), source=source, mint=Pubkey.from_string(mint), dest=dest, owner=owner,
            amount=amount, decimals=token.decimals))


def _memo(text: str) -> Instruction:
    return Instruction(MEMO_PROGRAM_ID, text.encode(), [])

