"""The platform-neutral social seam: the contract, its types and the dry-run client.
X lives beside it in :mod:`puppet_engine.twitter`; the name → client registry is the
composition root's (:mod:`puppet_engine.networks`)."""

from puppet_engine.social.base import CLOCK_SKEW, Account, Post, SocialClient, find_own
from puppet_engine.social.dryrun import DryRunClient

__all__ = ["CLOCK_SKEW", "Account", "DryRunClient", "Post", "SocialClient", "find_own"]
