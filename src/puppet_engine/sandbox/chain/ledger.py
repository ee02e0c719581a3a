"""The sandbox chain: LiteSVM plus what a validator adds around it.

LiteSVM executes transactions with the real System, SPL Token, Token-2022 and
Associated Token Account programs. It has no slots that pass, no blockhash
expiry, no commitment levels and no signature-status cache, so this module keeps
them:

- the slot follows the sandbox clock (one slot per 400 ms), plus one per landed
  transaction, plus one per status poll made while the clock stands still, so a
  client polling under a frozen virtual clock still sees progress (under a moving
  clock polls change nothing); block height trails the slot by a fixed gap;
- every blockhash handed out is remembered with its block height and accepted
  for 150 blocks (LiteSVM runs with its own blockhash check off);
- every landed transaction is recorded (slot, error, fee, balances before and
  after, logs) for ``getSignatureStatuses`` and ``getTransaction``; a landed
  transaction is *processed* in its slot, *confirmed* one slot later and
  *finalized* 32 slots later; a replay is ``AlreadyProcessed``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.token.state import Mint, TokenAccount, TokenAccountState
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import TransactionErrorFieldless

from puppet_engine.clock import Clock
from puppet_engine.sandbox.chain.encoding import (
    ACCOUNT_LEN,
    MINT_LEN,
    error_json,
    parse_mint,
    parse_token_account,
    token_account_bytes,
)
from puppet_engine.sandbox.chain.fpu import clear_mmx_state
from puppet_engine.solana.tokens import SOL_MINT, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

SLOT_SECONDS = 0.4
GENESIS_SLOT = 350_000_000
BLOCK_HEIGHT_GAP = 22_000_000  # block height < slot on a real cluster (skipped slots)
BLOCKHASH_VALID_BLOCKS = 150
FINALIZED_DEPTH = 32
HISTORY_LIMIT = 50_000


@dataclass
class TokenBalance:
    """One token account's balance at one moment, as ``pre/postTokenBalances`` list it."""

    account_index: int
    mint: Pubkey
    owner: Pubkey
    program_id: Pubkey
    amount: int
    decimals: int


@dataclass
class TxRecord:
    """A transaction that landed (successfully or not) in a slot."""

    signature: Signature
    slot: int
    block_time: int
    tx: VersionedTransaction
    err: Any  # solders TransactionErrorType or None
    fee: int
    logs: list[str]
    units: int
    pre_balances: list[int]
    post_balances: list[int]
    pre_token: list[TokenBalance]
    post_token: list[TokenBalance]
    inner_instructions: list[Any] = field(default_factory=list)


@dataclass
class Simulation:
    """The outcome of running a transaction without committing it."""

    err: Any
    logs: list[str]
    units: int
    fee: int
    post_accounts: dict[Pubkey, Account]
    inner_instructions: list[Any] = field(default_factory=list)


@dataclass
class SendOutcome:
    """``landed`` is None when the cluster dropped the transaction (it never gets a status)."""

    signature: Signature
    landed: TxRecord | None
    dropped_reason: str | None = None


class Ledger:
    """One LiteSVM instance and the validator bookkeeping around it."""

    def __init__(self, clock: Clock, seed: int = 7) -> None:
        self.clock = clock
        self.seed = seed
        self.svm = LiteSVM().with_blockhash_check(False)
        self.time_offset = 0.0  # seconds added by POST /sandbox/solana/advance
        self._t0 = clock.now()
        self._extra_slots = 0
        self._last_warp = -1
        self._last_nudge = float("nan")
        self._blockhashes: dict[Hash, int] = {}  # blockhash → block height it was issued at
        self.records: dict[Signature, TxRecord] = {}
        self.touched: set[Pubkey] = set()  # every address this chain has written (for snapshots)
        self._decimals: dict[Pubkey, int] = {}
        self.faucet = Keypair.from_seed(hashlib.sha256(f"sandbox-faucet:{seed}".encode()).digest())
        self.svm.set_account(self.faucet.pubkey(), Account(10**19, b"", SYSTEM_PROGRAM_ID, False))
        rent = self.rent(MINT_LEN)
        native = Mint(None, 0, 9, True)
        self.svm.set_account(Pubkey.from_string(SOL_MINT), Account(rent, bytes(native), TOKEN_PROGRAM_ID, False))

    # -- time ------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now() + self.time_offset

    @property
    def slot(self) -> int:
        elapsed = max(0.0, self.now() - self._t0)
        return GENESIS_SLOT + int(elapsed / SLOT_SECONDS) + self._extra_slots

    @property
    def block_height(self) -> int:
        return self.slot - BLOCK_HEIGHT_GAP

    def advance_slots(self, count: int = 1) -> None:
        self._extra_slots += max(0, count)

    def nudge(self) -> None:
        """A client is waiting on the chain: if no time passed since the last nudge, produce a slot."""
        now = self.now()
        if now == self._last_nudge:
            self.advance_slots(1)
        self._last_nudge = now

    def advance_time(self, seconds: float) -> None:
        self.time_offset += max(0.0, seconds)

    def _sync_clock(self) -> None:
        slot = self.slot
        if slot != self._last_warp:
            self.svm.warp_to_slot(slot)
            self._last_warp = slot

    # -- blockhashes -----------------------------------------------------------------

    def latest_blockhash(self) -> tuple[Hash, int]:
        """The current slot's blockhash and the last block height at which it is valid."""
        slot, height = self.slot, self.block_height
        blockhash = Hash(hashlib.sha256(f"sandbox-blockhash:{self.seed}:{slot}".encode()).digest())
        self._blockhashes.setdefault(blockhash, height)
        if len(self._blockhashes) > 4096:
            self._blockhashes = {h: b for h, b in self._blockhashes.items()
                                 if b + BLOCKHASH_VALID_BLOCKS >= height}
        return blockhash, self._blockhashes[blockhash] + BLOCKHASH_VALID_BLOCKS

    def blockhash_valid(self, blockhash: Hash) -> bool:
        issued = self._blockhashes.get(blockhash)
        return issued is not None and self.block_height <= issued + BLOCKHASH_VALID_BLOCKS

    def last_valid_block_height(self, blockhash: Hash) -> int | None:
        issued = self._blockhashes.get(blockhash)
        return None if issued is None else issued + BLOCKHASH_VALID_BLOCKS

    # -- transactions ----------------------------------------------------------------

    def simulate(self, tx: VersionedTransaction, *, sig_verify: bool = False) -> Simulation:
        """Run ``tx`` against current state without committing anything."""
        if tx.signatures and tx.signatures[0] in self.records:
            return Simulation(err_code("AlreadyProcessed"), [], 0, 0, {})
        if not self.blockhash_valid(tx.message.recent_blockhash):
            return Simulation(err_code("BlockhashNotFound"), [], 0, 0, {})
        self._sync_clock()
        self.svm.with_sigverify(sig_verify)
        try:
            result = self.svm.simulate_transaction(tx)
        finally:
            clear_mmx_state()  # LiteSVM leaves the x87 registers in use: see fpu.py
            self.svm.with_sigverify(True)
        if isinstance(result, FailedTransactionMetadata):
            meta = result.meta()
            return Simulation(result.err(), list(meta.logs()), meta.compute_units_consumed(), meta.fee(), {},
                              meta.inner_instructions())
        meta = result.meta()
        return Simulation(None, list(meta.logs()), meta.compute_units_consumed(), meta.fee(),
                          dict(result.post_accounts()), meta.inner_instructions())

    def process(self, tx: VersionedTransaction) -> SendOutcome:
        """Submit ``tx`` to the cluster: it lands in the next slot, or is dropped."""
        signature = tx.signatures[0]
        if signature in self.records:
            return SendOutcome(signature, self.records[signature])
        if not self.blockhash_valid(tx.message.recent_blockhash):
            return SendOutcome(signature, None, "BlockhashNotFound")
        if not all(tx.verify_with_results()):
            return SendOutcome(signature, None, "SignatureFailure")
        keys = list(tx.message.account_keys)
        self.touched.update(keys)
        pre = [self._snapshot(k) for k in keys]
        self.advance_slots(1)
        self._sync_clock()
        try:
            result = self.svm.send_transaction(tx)
        finally:
            clear_mmx_state()
        if isinstance(result, FailedTransactionMetadata):
            meta, err = result.meta(), result.err()
            if meta.signature() != signature:  # failed before execution: never lands
                return SendOutcome(signature, None, str(error_json(err)))
        else:
            meta, err = result, None
        post = [self._snapshot(k) for k in keys]
        record = TxRecord(
            signature=signature, slot=self.slot, block_time=int(self.now()), tx=tx, err=err, fee=meta.fee(),
            logs=list(meta.logs()), units=meta.compute_units_consumed(),
            pre_balances=[lamports for lamports, _ in pre], post_balances=[lamports for lamports, _ in post],
            pre_token=self._token_balances(pre), post_token=self._token_balances(post),
            inner_instructions=meta.inner_instructions(),
        )
        self.records[signature] = record
        self._last_nudge = self.now()  # a client polling right away under a frozen clock sees the next slot
        if len(self.records) > HISTORY_LIMIT:
            del self.records[next(iter(self.records))]
        return SendOutcome(signature, record)

    def status(self, signature: Signature) -> tuple[TxRecord, int] | None:
        """The record and its confirmation depth (current slot − landing slot)."""
        record = self.records.get(signature)
        if record is None:
            return None
        return record, max(0, self.slot - record.slot)

    def airdrop(self, to: Pubkey, lamports: int) -> SendOutcome:
        """A real System transfer from the sandbox faucet, recorded like any transaction."""
        blockhash, _ = self.latest_blockhash()
        ix = transfer(TransferParams(from_pubkey=self.faucet.pubkey(), to_pubkey=to, lamports=lamports))
        msg = MessageV0.try_compile(self.faucet.pubkey(), [ix], [], blockhash)
        return self.process(VersionedTransaction(msg, [self.faucet]))

    def _snapshot(self, key: Pubkey) -> tuple[int, Any]:
        account = self.svm.get_account(key)
        if account is None:
            return 0, None
        state = parse_token_account(account)
        return account.lamports, (state, account.owner) if state else None

    def _token_balances(self, snapshots: list[tuple[int, Any]]) -> list[TokenBalance]:
        out = []
        for index, (_, parsed) in enumerate(snapshots):
            if parsed:
                state, program = parsed
                out.append(TokenBalance(index, state.mint, state.owner, program, state.amount,
                                        self.decimals_of(state.mint)))
        return out

    # -- accounts --------------------------------------------------------------------

    def rent(self, size: int) -> int:
        return self.svm.minimum_balance_for_rent_exemption(size)

    def account(self, key: Pubkey) -> Account | None:
        return self.svm.get_account(key)

    def balance(self, key: Pubkey) -> int:
        return self.svm.get_balance(key) or 0

    def decimals_of(self, mint: Pubkey) -> int:
        if mint not in self._decimals:
            parsed = parse_mint(self.svm.get_account(mint))
            if parsed is None:
                return 0
            self._decimals[mint] = parsed.decimals
        return self._decimals[mint]

    def create_mint(self, mint: Pubkey, decimals: int, program_id: Pubkey, authority: Pubkey) -> None:
        state = Mint(authority, 0, decimals, True)
        self.touched.add(mint)
        self.svm.set_account(mint, Account(self.rent(MINT_LEN), bytes(state), program_id, False))
        self._decimals[mint] = decimals

    def write_token_account(self, address: Pubkey, mint: Pubkey, owner: Pubkey, amount: int, *,
                            delegate: Pubkey | None = None, delegated_amount: int = 0) -> None:
        """Create or overwrite a token account (wSOL accounts hold their amount as lamports too)."""
        mint_account = self.svm.get_account(mint)
        if mint_account is None:
            raise ValueError(f"mint {mint} does not exist")
        program_id = mint_account.owner
        native = str(mint) == SOL_MINT
        rent = self.rent(ACCOUNT_LEN)
        state = TokenAccount(mint, owner, amount, delegate, TokenAccountState.Initialized,
                             rent if native else None, delegated_amount if delegate else 0, None)
        data = token_account_bytes(state, program_id)
        lamports = self.rent(len(data)) + (amount if native else 0)
        self.touched.add(address)
        self.svm.set_account(address, Account(lamports, data, program_id, False))

    def token_amount(self, address: Pubkey) -> int:
        state = parse_token_account(self.svm.get_account(address))
        return state.amount if state else 0

    def close_account(self, address: Pubkey) -> None:
        self.svm.set_account(address, Account(0, b"", SYSTEM_PROGRAM_ID, False))

    def mint_to(self, owner: Pubkey, mint: Pubkey, amount: int, ata: Pubkey) -> int:
        """Credit ``amount`` to ``owner``'s token account ``ata`` (created if missing); returns the new balance."""
        current = parse_token_account(self.svm.get_account(ata))
        balance = (current.amount if current else 0) + amount
        self.write_token_account(ata, mint, owner, balance)
        mint_account = self.svm.get_account(mint)
        state = parse_mint(mint_account)
        if state is not None and str(mint) != SOL_MINT and mint_account is not None:
            supply = Mint(state.mint_authority, state.supply + amount, state.decimals, True, state.freeze_authority)
            self.svm.set_account(mint, Account(mint_account.lamports, bytes(supply), mint_account.owner, False))
        return balance

    def token_accounts(self, owner: Pubkey, *, mint: Pubkey | None = None,
                       program_id: Pubkey | None = None) -> list[tuple[Pubkey, Account]]:
        """Token accounts whose SPL owner is ``owner``, optionally of one mint or program."""
        programs = [program_id] if program_id else [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID]
        found = []
        for program in programs:
            for address, account in self.svm.get_program_accounts(program):
                state = parse_token_account(account)
                if state is None or state.owner != owner:
                    continue
                if mint is not None and state.mint != mint:
                    continue
                found.append((address, account))
        return found


def err_code(name: str) -> Any:
    """A fieldless transaction error (``BlockhashNotFound``, ``AlreadyProcessed`` …) as solders has it."""
    return getattr(TransactionErrorFieldless, name)

