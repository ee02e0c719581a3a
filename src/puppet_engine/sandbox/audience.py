"""How the sandbox crowd receives the agents' posts: impressions and interactions over time.

The crowd (:mod:`puppet_engine.sandbox.crowd`) reads every post an agent (any account
that is not a crowd account) publishes, and engages with it according to the post:

- **persona fit**: the share of the post's words that belong to what its author is
  followed for — the interests set through ``POST /sandbox/crowd/interests``, else the
  words the author used most in its earlier posts — plus the crowd's own topics;
- **length**: posts of about 80–180 characters do best, very short or very long ones worse;
- **time of day**: the crowd is most active around 17:00 UTC and least around 05:00 UTC
  (the sandbox clock), which changes both the reach and the share that interacts;
- a per-post draw from the sandbox seed, so two posts alike still differ.

Counts grow with the post's age (most of a post's life is its first day) and never go
down. :meth:`Audience.metrics` is a pure function of the post, the author's history and
the clock, so a seeded sandbox replays the same numbers and nothing runs in the background.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from puppet_engine.sandbox.x.state import StoredTweet, XState
from puppet_engine.twitter.text import weighted_length

_WORD = re.compile(r"[a-z0-9$#]{4,}")
_STOP = frozenset({
    "this", "that", "with", "have", "from", "they", "will", "what", "when", "your", "about", "just", "there",
    "their", "been", "were", "would", "could", "should", "into", "more", "some", "than", "then", "them", "these",
    "those", "very", "much", "over", "only", "also", "here", "even", "like", "make", "made", "many", "most",
    "such", "being", "does", "done", "each", "which", "while", "where",
})
HOUR = 3600.0
REACH = 400.0  # impressions of a well-fitting post at the crowd's busiest hour, after a few days
IMPRESSION_TAU = 6 * HOUR  # impressions come fast …
INTERACTION_TAU = 10 * HOUR  # … likes and replies trail them
PEAK_HOUR_UTC = 17
LEARNED_WORDS = 30  # an author is followed for the words it used most in its earlier posts
SHARES = {"like_count": 0.62, "retweet_count": 0.1, "reply_count": 0.1, "quote_count": 0.04,
          "bookmark_count": 0.14}


def words(text: str) -> set[str]:
    return {w.strip("$#") for w in _WORD.findall(text.lower()) if w.strip("$#") not in _STOP}


def activity(hour_utc: int) -> float:
    """The crowd's activity at an hour of the day, 0.2 (05:00 UTC) … 1.0 (17:00 UTC)."""
    return 0.2 + 0.8 * (0.5 + 0.5 * math.cos(2 * math.pi * (hour_utc - PEAK_HOUR_UTC) / 24))


def length_factor(text: str) -> float:
    """1.0 for a post of about 80–180 characters, down to 0.45 for a one-liner or a long wall."""
    n = weighted_length(text)
    return 0.45 + 0.55 * math.exp(-(((n - 130) / 90) ** 2)) if not 80 <= n <= 180 else 1.0


def growth(age: float, tau: float) -> float:
    return 1.0 - math.exp(-max(0.0, age) / tau)


@dataclass
class Audience:
    """The crowd's reception of posts: ``metrics(tweet)`` → extra public metric counts."""

    state: XState
    now: Callable[[], float]
    seed: int
    topics: Iterable[str] = ()
    interests: dict[str, set[str]] = field(default_factory=dict)  # user id → what it is followed for
    crowd_prefix: str = "crowd_"

    def set_interests(self, user_id: str, keywords: Iterable[str]) -> set[str]:
        self.interests[user_id] = {w for k in keywords for w in words(k)} or set()
        return self.interests[user_id]

    def followed_for(self, tweet: StoredTweet) -> set[str]:
        """What the author's followers come for: set interests, else its most used words before this post."""
        explicit = self.interests.get(tweet.author_id)
        if explicit:
            return explicit
        counts: Counter[str] = Counter()
        for tweet_id in self.state.by_author.get(tweet.author_id, ()):
            if tweet_id == tweet.id:
                break
            earlier = self.state.tweets[tweet_id]
            if not earlier.deleted and not earlier.is_retweet:
                counts.update(words(earlier.text))
        return {w for w, _ in counts.most_common(LEARNED_WORDS)}

    def fit(self, tweet: StoredTweet) -> float:
        """Persona fit in [0, 1]: how much of the post is what its audience follows the author for."""
        mine = words(tweet.text)
        if not mine:
            return 0.0
        wanted = self.followed_for(tweet) | {w for t in self.topics for w in words(t)}
        return min(1.0, 2.0 * len(mine & wanted) / min(len(mine), 8))

    def engages_with(self, tweet: StoredTweet) -> bool:
        author = self.state.accounts.get(tweet.author_id)
        return (author is not None and not author.username.startswith(self.crowd_prefix)
                and not tweet.is_retweet and not tweet.deleted)

    def metrics(self, tweet: StoredTweet) -> dict[str, int]:
        """The crowd's impressions and interactions on ``tweet`` so far (zeros for crowd posts)."""
        counts = dict.fromkeys((*SHARES, "impression_count"), 0)
        if not self.engages_with(tweet):
            return counts
        age = self.now() - tweet.created_at
        draw = random.Random(f"{self.seed}:{tweet.id}")
        luck = math.exp(draw.gauss(0.0, 0.25))
        fit = self.fit(tweet)
        busy = activity(int(tweet.created_at // HOUR) % 24)
        reach = REACH * busy * (0.3 + fit) * luck * (0.3 if tweet.ref("replied_to") else 1.0)
        rate = (0.004 + 0.06 * fit) * (0.4 + busy) * length_factor(tweet.text)
        counts["impression_count"] = int(reach * growth(age, IMPRESSION_TAU))
        interactions = reach * rate * growth(age, INTERACTION_TAU)
        for name, share in SHARES.items():
            counts[name] = int(interactions * share)
        return counts
