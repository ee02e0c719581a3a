"""Known tokens: symbols, mints, decimals and token programs, for mainnet and the sandbox.

Agent configs name tokens by symbol (``"SOL"``, ``"USDC"``) or by mint. A
:class:`TokenRegistry` resolves either to a :class:`TokenInfo`. Amounts move between
human units (``1.5`` SOL) and raw base units (``1_500_000_000`` lamports) only through
:func:`to_raw` and :func:`from_raw`, which use exact decimal arithmetic.

The sandbox's invented tokens have fixed mints derived from their symbols, so the
sandbox, the trader and the docs agree on them without any lookup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from solders.pubkey import Pubkey

TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)

SOL_MINT = "So11111111111111111111111111111111111111112"  # wrapped SOL; Jupiter's id for SOL
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
LAMPORTS_PER_SOL = 1_000_000_000


@dataclass(frozen=True)
class TokenInfo:
    """One SPL token as the trader knows it."""

    symbol: str
    mint: str
    decimals: int
    program_id: str = str(TOKEN_PROGRAM_ID)
    name: str = ""

    @property
    def is_sol(self) -> bool:
        return self.mint == SOL_MINT

    @property
    def is_token_2022(self) -> bool:
        return self.program_id == str(TOKEN_2022_PROGRAM_ID)

    def to_raw(self, amount: float | str | Decimal) -> int:
        return to_raw(amount, self.decimals)

    def from_raw(self, raw: int | str) -> float:
        return from_raw(raw, self.decimals)


def to_raw(amount: float | str | Decimal, decimals: int) -> int:
    """``1.5`` with 9 decimals → ``1500000000`` (rounded down: never spend more than asked)."""
    value = Decimal(str(amount)) * (Decimal(10) ** decimals)
    return int(value.to_integral_value(rounding=ROUND_DOWN))


def from_raw(raw: int | str, decimals: int) -> float:
    return float(Decimal(int(raw)) / (Decimal(10) ** decimals))


def ui_amount_string(raw: int, decimals: int) -> str:
    """The RPC's ``uiAmountString``: exact, without trailing zeros (``"1.5"``, ``"0"``, ``"12"``)."""
    if decimals == 0:
        return str(raw)
    whole, frac = divmod(int(raw), 10**decimals)
    frac_text = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{whole}.{frac_text}" if frac_text else str(whole)


def sandbox_mint(symbol: str) -> str:
    """The fixed mint address of an invented sandbox token."""
    return str(Pubkey(hashlib.sha256(f"puppet-engine-sandbox-mint:{symbol}".encode()).digest()))


SOL = TokenInfo("SOL", SOL_MINT, 9, name="Wrapped SOL")
USDC = TokenInfo("USDC", USDC_MINT, 6, name="USD Coin")

# A few well-known mainnet tokens, so configs can name them by symbol.
MAINNET_TOKENS: tuple[TokenInfo, ...] = (
    SOL,
    USDC,
    TokenInfo("USDT", "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB", 6, name="USDT"),
    TokenInfo("JUP", "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN", 6, name="Jupiter"),
    TokenInfo("BONK", "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263", 5, name="Bonk"),
    TokenInfo("WIF", "EKpQGSJtjMFqKZ9KQanSqYXRcF8fBopzLHYxdM65zcjm", 6, name="dogwifhat"),
    TokenInfo("PYUSD", "2b1kV6DkPAnxd5ixfnxCpjxmKwqjjaYmCZfHsFu24GXo", 6,
              str(TOKEN_2022_PROGRAM_ID), name="PayPal USD"),
)

# The sandbox's invented tokens (one Token-2022), each with a pool on the sandbox chain.
SANDBOX_TOKENS: tuple[TokenInfo, ...] = (
    SOL,
    USDC,
    TokenInfo("PUPPET", sandbox_mint("PUPPET"), 6, name="Puppet Token"),
    TokenInfo("STRNG", sandbox_mint("STRNG"), 9, name="Strings"),
    TokenInfo("WOOF", sandbox_mint("WOOF"), 5, name="Woof Inu"),
    TokenInfo("GLITCH", sandbox_mint("GLITCH"), 8, str(TOKEN_2022_PROGRAM_ID), name="Glitch (Token-2022)"),
)

STABLECOINS = frozenset({USDC_MINT, "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB",
                         "2b1kV6DkPAnxd5ixfnxCpjxmKwqjjaYmCZfHsFu24GXo"})


class TokenRegistry:
    """Symbol and mint lookup; symbols are case-insensitive, mints exact."""

    def __init__(self, tokens: Iterable[TokenInfo]) -> None:
        self._by_mint: dict[str, TokenInfo] = {}
        self._by_symbol: dict[str, TokenInfo] = {}
        for token in tokens:
            self.add(token)

    @classmethod
    def for_network(cls, network: str) -> TokenRegistry:
        """``sandbox`` → the sandbox tokens; anything else → the mainnet list."""
        return cls(SANDBOX_TOKENS if network == "sandbox" else MAINNET_TOKENS)

    def add(self, token: TokenInfo) -> None:
        self._by_mint[token.mint] = token
        self._by_symbol.setdefault(token.symbol.upper(), token)

    def get(self, symbol_or_mint: str) -> TokenInfo | None:
        text = symbol_or_mint.strip()
        return self._by_mint.get(text) or self._by_symbol.get(text.upper())

    def __iter__(self) -> Iterator[TokenInfo]:
        return iter(self._by_mint.values())

    def __len__(self) -> int:
        return len(self._by_mint)

    def symbol_of(self, mint: str) -> str:
        token = self._by_mint.get(mint)
        return token.symbol if token else mint[:4] + "…" + mint[-4:]

    def matches(self, names: Iterable[str], token: TokenInfo) -> bool:
        """Whether ``token`` is one of ``names`` (symbols or mints)."""
        for name in names:
            text = name.strip()
            if text == token.mint or text.upper() == token.symbol.upper():
                return True
        return False
