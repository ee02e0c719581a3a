"""X (Twitter), one social network: the X API v2 client, rate limiting and tweet text rules."""

from puppet_engine.twitter.client import TwitterClient
from puppet_engine.twitter.credentials import TwitterCredentials
from puppet_engine.twitter.ratelimit import RateLimiter
from puppet_engine.twitter.text import (
    count_cashtags,
    extract_urls,
    fit_tweet,
    is_valid_tweet,
    split_thread,
    weighted_length,
)

__all__ = [
    "RateLimiter", "TwitterClient", "TwitterCredentials",
    "count_cashtags", "extract_urls", "fit_tweet", "is_valid_tweet", "split_thread", "weighted_length",
]
