"""Saving and loading the Solana world for ``puppet-engine sandbox --snapshot FILE``.

What survives a restart: every account the chain has written (wallets, token
accounts, mints, pool vaults, escrows), the slot (it only moves forward), the last
1,000 transactions (so signature statuses and ``getTransaction`` still answer for
trades in flight), the market's parameters and price history, and the open escrows.
Blockhashes issued before the restart are not valid after it, as on a real cluster
after a long pause. The random walk resumes from the restart, without catching up.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from puppet_engine.sandbox.chain.encoding import error_json
from puppet_engine.sandbox.chain.ledger import TokenBalance, TxRecord
from puppet_engine.sandbox.chain.swaps import Escrow
from puppet_engine.sandbox.chain.world import SolanaWorld

KEPT_RECORDS = 1_000
KEPT_HISTORY = 300
_SKIP_OWNERS = {"Sysvar1111111111111111111111111111111111111", "NativeLoader1111111111111111111111111111111"}


def _balances(items: list[TokenBalance]) -> list[list[Any]]:
    return [[b.account_index, str(b.mint), str(b.owner), str(b.program_id), b.amount, b.decimals] for b in items]


def _unbalances(items: list[list[Any]]) -> list[TokenBalance]:
    return [TokenBalance(i, Pubkey.from_string(m), Pubkey.from_string(o), Pubkey.from_string(p), a, d)
            for i, m, o, p, a, d in items]


def snapshot_world(world: SolanaWorld) -> dict[str, Any]:
    ledger, market = world.ledger, world.market
    accounts = {}
    for key in ledger.touched:
        account = ledger.account(key)
        if account is None or account.lamports == 0 or account.executable or str(account.owner) in _SKIP_OWNERS:
            continue
        accounts[str(key)] = [account.lamports, base64.b64encode(bytes(account.data)).decode(), str(account.owner)]
    records = []
    for record in list(ledger.records.values())[-KEPT_RECORDS:]:
        records.append({
            "signature": str(record.signature), "slot": record.slot, "block_time": record.block_time,
            "tx": base64.b64encode(bytes(record.tx)).decode(), "err": error_json(record.err), "fee": record.fee,
            "logs": record.logs, "units": record.units, "pre": record.pre_balances, "post": record.post_balances,
            "pre_token": _balances(record.pre_token), "post_token": _balances(record.post_token),
        })
    tokens = {mint: {"volatility": t.volatility, "drift": t.drift, "trend": t.trend, "listed": t.listed,
                     "history": list(t.history)[-KEPT_HISTORY:]} for mint, t in market.tokens.items()}
    escrows = [[str(e.address), str(e.vault), e.mint, e.last_valid_block_height] for e in world.swaps.escrows]
    return {"slot": ledger.slot, "time_offset": ledger.time_offset, "accounts": accounts, "records": records,
            "tokens": tokens, "escrows": escrows, "escrow_counter": world.swaps.counter}


def restore_world(world: SolanaWorld, data: dict[str, Any]) -> None:
    ledger, market = world.ledger, world.market
    ledger.time_offset = float(data.get("time_offset", 0.0))
    ledger.advance_slots(max(0, int(data.get("slot", 0)) - ledger.slot))
    for address, (lamports, b64, owner) in data.get("accounts", {}).items():
        key = Pubkey.from_string(address)
        ledger.svm.set_account(key, Account(lamports, base64.b64decode(b64), Pubkey.from_string(owner), False))
        ledger.touched.add(key)
    for item in data.get("records", []):
        err = None
        if item["err"] is not None:
            err = RpcSimulateTransactionResult.from_json(json.dumps({"err": item["err"]})).err
        signature = Signature.from_string(item["signature"])
        ledger.records[signature] = TxRecord(
            signature=signature, slot=item["slot"], block_time=item["block_time"],
            tx=VersionedTransaction.from_bytes(base64.b64decode(item["tx"])), err=err, fee=item["fee"],
            logs=item["logs"], units=item["units"], pre_balances=item["pre"], post_balances=item["post"],
            pre_token=_unbalances(item["pre_token"]), post_token=_unbalances(item["post_token"]),
        )
    for mint, saved in data.get("tokens", {}).items():
        token = market.tokens.get(mint)
        if token is None:
            continue
        token.volatility, token.drift, token.trend = saved["volatility"], saved["drift"], saved["trend"]
        token.listed = saved["listed"]
        token.history.clear()
        token.history.extend((float(t), float(p)) for t, p in saved["history"])
    world.swaps.escrows = [Escrow(Pubkey.from_string(a), Pubkey.from_string(v), m, lv)
                           for a, v, m, lv in data.get("escrows", [])]
    world.swaps.counter = int(data.get("escrow_counter", 0))
    market.restart_walk()
