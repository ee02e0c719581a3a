"""The platform-neutral social seam: the contract, its types, the dry-run client and the
name → client registry (:mod:`puppet_engine.social.registry`). X lives beside it in
:mod:`puppet_engine.twitter`."""

from puppet_engine.social.base import CLOCK_SKEW, Account, Post, SocialClient, find_own
from puppet_engine.social.dryrun import DryRunClient

__all__ = ["CLOCK_SKEW", "Account", "DryRunClient", "Post", "SocialClient", "find_own"]
