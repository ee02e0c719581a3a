"""The sandbox's Solana side: a JSON-RPC node and a Jupiter API over one LiteSVM chain.

``SolanaRpcService`` (``/solana``) and ``JupiterService`` (``/jupiter``) share one
:class:`SolanaWorld`: the ledger (LiteSVM plus slots, blockhashes and signature
statuses), the constant-product pools whose vaults are token accounts on it, and the
random walk that moves their prices. Admin routes live at ``/sandbox/solana`` (and the
same at ``/sandbox/jupiter``).
"""

from puppet_engine.sandbox.chain.jupiter import JupiterService
from puppet_engine.sandbox.chain.rpc import SolanaRpcService
from puppet_engine.sandbox.chain.world import SolanaWorld

__all__ = ["JupiterService", "SolanaRpcService", "SolanaWorld"]
