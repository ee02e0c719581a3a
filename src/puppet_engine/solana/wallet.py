"""An agent's Solana wallet: its keypair, and its SOL and SPL balances read over RPC.

The secret key is accepted as a base58 string (64-byte keypair or 32-byte seed) or a
JSON byte array (``[12, 34, …]``, as ``solana-keygen`` writes it). Only the public key
ever appears in ``repr()``, logs and errors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from pydantic import SecretStr
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from puppet_engine.errors import ConfigError
from puppet_engine.solana.rpc import SolanaRpc
from puppet_engine.solana.tokens import LAMPORTS_PER_SOL, SOL_MINT, from_raw

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _B58.find(char)
        if index < 0:
            raise ValueError("not base58")
        number = number * 58 + index
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + raw


def parse_keypair(secret: str | list[int] | SecretStr, *, source: str = "private key") -> Keypair:
    """A keypair from base58 or a JSON byte array; errors name ``source``, never the secret."""
    value: str | list[int] = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    try:
        if isinstance(value, str) and value.strip().startswith("["):
            value = json.loads(value)
        raw = bytes(value) if isinstance(value, list) else b58decode(value.strip())
    except (ValueError, TypeError):
        raise ConfigError(f"{source}: expected a base58 secret key or a JSON array of 64 bytes") from None
    if len(raw) == 64:
        try:
            keypair = Keypair.from_bytes(raw)
        except ValueError:
            keypair = None
        if keypair is None or bytes(keypair.pubkey()) != raw[32:]:
            raise ConfigError(f"{source}: the last 32 bytes are not the public key of the first 32")
        return keypair
    if len(raw) == 32:
        return Keypair.from_seed(raw)
    raise ConfigError(f"{source}: a secret key is 64 bytes (or a 32-byte seed), got {len(raw)} bytes")


def sandbox_keypair(agent_id: str, seed: int = 7) -> Keypair:
    """The deterministic sandbox wallet of an agent (never use on mainnet)."""
    return Keypair.from_seed(hashlib.sha256(f"puppet-engine-sandbox-wallet:{seed}:{agent_id}".encode()).digest())


@dataclass(frozen=True)
class TokenBalance:
    mint: str
    amount: int  # raw base units, summed over the owner's accounts of this mint
    decimals: int
    program_id: str
    accounts: tuple[str, ...] = ()

    @property
    def ui_amount(self) -> float:
        return from_raw(self.amount, self.decimals)


@dataclass(frozen=True)
class WalletBalances:
    """SOL and every SPL token the wallet holds, at one moment."""

    lamports: int
    tokens: dict[str, TokenBalance] = field(default_factory=dict)

    @property
    def sol(self) -> float:
        return self.lamports / LAMPORTS_PER_SOL

    def amount(self, mint: str) -> float:
        """Spendable amount of ``mint`` in whole units (SOL counts native lamports plus any wSOL)."""
        held = self.tokens.get(mint)
        ui = held.ui_amount if held else 0.0
        return ui + self.sol if mint == SOL_MINT else ui


class SolanaWallet:
    """A keypair and the RPC to read its balances; signs transactions for the trader."""

    def __init__(self, keypair: Keypair, rpc: SolanaRpc) -> None:
        self._keypair = keypair
        self.rpc = rpc

    @classmethod
    def from_secret(cls, secret: str | list[int] | SecretStr, rpc: SolanaRpc, *,
                    source: str = "private key") -> SolanaWallet:
        return cls(parse_keypair(secret, source=source), rpc)

    @property
    def public_key(self) -> Pubkey:
        return self._keypair.pubkey()

    @property
    def address(self) -> str:
        return str(self._keypair.pubkey())

    def __repr__(self) -> str:
        return f"SolanaWallet({self.address})"

    __str__ = __repr__

    def sign(self, tx: VersionedTransaction) -> VersionedTransaction:
        """Sign a transaction whose only required signer is this wallet (Jupiter's swaps)."""
        return VersionedTransaction(tx.message, [self._keypair])

    async def lamports(self) -> int:
        return await self.rpc.lamports(self.public_key)

    async def sol_balance(self) -> float:
        return await self.lamports() / LAMPORTS_PER_SOL

    async def token_balances(self) -> dict[str, TokenBalance]:
        """Balances by mint over SPL Token and Token-2022 accounts, with each mint's decimals."""
        totals: dict[str, TokenBalance] = {}
        for holding in await self.rpc.token_holdings(self.public_key):
            prev = totals.get(holding.mint)
            amount = holding.amount + (prev.amount if prev else 0)
            accounts = (prev.accounts if prev else ()) + (holding.account,)
            totals[holding.mint] = TokenBalance(holding.mint, amount, holding.decimals, holding.program_id, accounts)
        return totals

    async def token_balance(self, mint: str) -> TokenBalance:
        found = (await self.token_balances()).get(mint)
        if found is not None:
            return found
        info = await self.rpc.mint_info(Pubkey.from_string(mint))
        decimals, program = info if info else (0, "")
        return TokenBalance(mint, 0, decimals, program)

    async def balances(self) -> WalletBalances:
        return WalletBalances(await self.lamports(), await self.token_balances())
