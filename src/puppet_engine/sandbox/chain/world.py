"""The one Solana world a sandbox holds, shared by its RPC and Jupiter emulators."""

from __future__ import annotations

import random
import weakref

from puppet_engine.sandbox.chain.ledger import Ledger
from puppet_engine.sandbox.chain.market import Market
from puppet_engine.sandbox.chain.swaps import SwapBuilder
from puppet_engine.sandbox.service import SandboxHost

_WORLDS: weakref.WeakKeyDictionary[SandboxHost, SolanaWorld] = weakref.WeakKeyDictionary()


class SolanaWorld:
    """The LiteSVM ledger, the pools living on it, and the swap builder drawing from them."""

    def __init__(self, sandbox: SandboxHost) -> None:
        self.ledger = Ledger(sandbox.clock, seed=sandbox.config.seed)
        # A random source of its own, seeded from the sandbox's: the market's walk does not
        # depend on how often other emulators draw numbers.
        self.market = Market(self.ledger, random.Random(sandbox.rng.getrandbits(64)))
        self.swaps = SwapBuilder(self.market)

    @classmethod
    def of(cls, sandbox: SandboxHost) -> SolanaWorld:
        world = _WORLDS.get(sandbox)
        if world is None:
            world = _WORLDS[sandbox] = cls(sandbox)
        return world

    def tick(self) -> None:
        """Bring the market up to the sandbox clock and return expired escrows to their pools."""
        self.market.sync()
        self.swaps.sweep()

    def advance(self, seconds: float) -> None:
        """Move this world (slots and market) ``seconds`` ahead of the sandbox clock."""
        self.ledger.advance_time(seconds)
        self.tick()
