"""Regular expressions behind :mod:`puppet_engine.twitter.text`, after twitter-text.

Emoji: a grammar over Unicode's ``Extended_Pictographic`` code points (ranges below,
Unicode 17 emoji data), skin-tone modifiers, variation selectors, ZWJ sequences,
keycaps, regional-indicator flags and tag sequences (subdivision flags). URLs: the
twitter-text URL grammar (preceding character, sub-domains, a known top-level domain,
port, path with balanced parentheses, query), with the TLD list in ``tlds.txt``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

# \p{Extended_Pictographic}
_PICTO = (
    "\u00A9\u00AE\u203C\u2049\u2122\u2139\u2194-\u2199\u21A9-\u21AA\u231A-\u231B\u2328\u23CF"
    "\u23E9-\u23F3\u23F8-\u23FA\u24C2\u25AA-\u25AB\u25B6\u25C0\u25FB-\u25FE\u2600-\u2604\u260E"
    "\u2611\u2614-\u2615\u2618\u261D\u2620\u2622-\u2623\u2626\u262A\u262E-\u262F\u2638-\u263A"
    "\u2640\u2642\u2648-\u2653\u265F-\u2660\u2663\u2665-\u2666\u2668\u267B\u267E-\u267F"
    "\u2692-\u2697\u2699\u269B-\u269C\u26A0-\u26A1\u26A7\u26AA-\u26AB\u26B0-\u26B1\u26BD-\u26BE"
    "\u26C4-\u26C5\u26C8\u26CE-\u26CF\u26D1\u26D3-\u26D4\u26E9-\u26EA\u26F0-\u26F5\u26F7-\u26FA"
    "\u26FD\u2702\u2705\u2708-\u270D\u270F\u2712\u2714\u2716\u271D\u2721\u2728\u2733-\u2734"
    "\u2744\u2747\u274C\u274E\u2753-\u2755\u2757\u2763-\u2764\u2795-\u2797\u27A1\u27B0\u27BF"
    "\u2934-\u2935\u2B05-\u2B07\u2B1B-\u2B1C\u2B50\u2B55\u3030\u303D\u3297\u3299\U0001F004"
    "\U0001F02C-\U0001F02F\U0001F094-\U0001F09F\U0001F0AF-\U0001F0B0\U0001F0C0"
    "\U0001F0CF-\U0001F0D0\U0001F0F6-\U0001F0FF\U0001F170-\U0001F171\U0001F17E-\U0001F17F"
    "\U0001F18E\U0001F191-\U0001F19A\U0001F1AF-\U0001F1E5\U0001F201-\U0001F20F\U0001F21A"
    "\U0001F22F\U0001F232-\U0001F23A\U0001F23C-\U0001F23F\U0001F249-\U0001F25F"
    "\U0001F266-\U0001F321\U0001F324-\U0001F393\U0001F396-\U0001F397\U0001F399-\U0001F39B"
    "\U0001F39E-\U0001F3F0\U0001F3F3-\U0001F3F5\U0001F3F7-\U0001F3FA\U0001F400-\U0001F4FD"
    "\U0001F4FF-\U0001F53D\U0001F549-\U0001F54E\U0001F550-\U0001F567\U0001F56F-\U0001F570"
    "\U0001F573-\U0001F57A\U0001F587\U0001F58A-\U0001F58D\U0001F590\U0001F595-\U0001F596"
    "\U0001F5A4-\U0001F5A5\U0001F5A8\U0001F5B1-\U0001F5B2\U0001F5BC\U0001F5C2-\U0001F5C4"
    "\U0001F5D1-\U0001F5D3\U0001F5DC-\U0001F5DE\U0001F5E1\U0001F5E3\U0001F5E8\U0001F5EF"
    "\U0001F5F3\U0001F5FA-\U0001F64F\U0001F680-\U0001F6C5\U0001F6CB-\U0001F6D2"
    "\U0001F6D5-\U0001F6E5\U0001F6E9\U0001F6EB-\U0001F6F0\U0001F6F3-\U0001F6FF"
    "\U0001F7DC-\U0001F7F0\U0001F80C-\U0001F80F\U0001F848-\U0001F84F\U0001F85A-\U0001F85F"
    "\U0001F888-\U0001F88F\U0001F8AE-\U0001F8AF\U0001F8BC-\U0001F8BF\U0001F8C2-\U0001F8CF"
    "\U0001F8D9-\U0001F8FF\U0001F90C-\U0001F93A\U0001F93C-\U0001F945\U0001F947-\U0001F9FF"
    "\U0001FA58-\U0001FA5F\U0001FA6E-\U0001FAFF\U0001FC00-\U0001FFFD"
)
_MODIFIER = "\U0001F3FB-\U0001F3FF"
_ELEMENT = f"[{_PICTO}](?:\uFE0F|[{_MODIFIER}])?(?:\u20E3)?"
EMOJI = re.compile(
    "[\U0001F1E6-\U0001F1FF]{2}"  # flag: two regional indicators
    "|[0-9#*]\uFE0F?\u20E3"  # keycap
    "|\U0001F3F4[\U000E0020-\U000E007E]+\U000E007F"  # tag sequence (subdivision flag)
    f"|{_ELEMENT}(?:\u200D{_ELEMENT})*"  # pictograph, modifiers, ZWJ sequence
)

# Characters twitter-text refuses anywhere in a post.
INVALID_CHARS = frozenset("\uFFFE\uFEFF\uFFFF")

_PUNCT = r"!\"#$%&'()*+,./:;<=>?@\[\\\]^_`{|}~\-"
_SPACES = r"\s\u0085\u00A0\u1680\u180E\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
_DIRECTIONAL = "\u202A-\u202E\u061C\u200E\u200F\u2066-\u2069"
_DOMAIN_CHAR = f"[^{_PUNCT}{_SPACES}\x00-\x1F\x7F\uFFFE\uFEFF\uFFFF{_DIRECTIONAL}]"
_ASCII_DOMAIN_CHAR = "[a-z0-9]"
_PATH_CHAR = r"[a-z\u0400-\u04FF0-9!*';:=+,.$/%#\[\]\-\u2013_~&|@\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u00FF]"
_PATH_END = r"[a-z\u0400-\u04FF0-9=_#/+\-\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u00FF]"
_PARENS = rf"\((?:{_PATH_CHAR}+|(?:{_PATH_CHAR}*\({_PATH_CHAR}+\){_PATH_CHAR}*))\)"
_PATH = (
    rf"(?:{_PATH_CHAR}*(?:{_PARENS}{_PATH_CHAR}*)*(?:{_PATH_END}|{_PARENS}))"
    rf"|(?:{_PATH_CHAR}+/)"
)
_QUERY = r"[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]*[a-z0-9_&=#/\-]"


def _label(char: str, inner: str) -> str:
    return f"(?:{char}(?:(?:{inner})*{char})?)"


@lru_cache(maxsize=1)
def tlds() -> frozenset[str]:
    """Every top-level domain a URL may end in (lower case, Unicode form)."""
    text = resources.files("puppet_engine.twitter").joinpath("tlds.txt").read_text("utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _domain(char: str) -> str:
    tld = "|".join(re.escape(t) for t in sorted(tlds(), key=len, reverse=True))
    sub = _label(char, f"[_-]|{char}")
    name = _label(char, f"-|{char}")
    return rf"(?:{sub}\.)*{name}\.(?:{tld}|xn--[0-9a-z-]+)(?=[^0-9a-z@+\-]|$)"


@lru_cache(maxsize=1)
def url_pattern() -> re.Pattern[str]:
    """Candidate URLs: group ``proto`` + ``host`` (any script) or ``bare`` (ASCII host, no scheme)."""
    tail = rf"(?::[0-9]+)?(?:/(?:{_PATH})*)?(?:\?{_QUERY})?"
    return re.compile(
        r"(?<![a-z0-9@＠$#＃\uFFFE\uFEFF\uFFFF])"
        rf"(?:(?P<proto>https?://)(?P<host>{_domain(_DOMAIN_CHAR)})"
        rf"|(?<![\-_./])(?P<bare>{_domain(_ASCII_DOMAIN_CHAR)})){tail}",
        re.IGNORECASE,
    )


_CASHTAG_BOUNDARY = rf"(?=$|[{_SPACES}]|[{_PUNCT}])"
CASHTAG = re.compile(rf"(?:^|(?<=[{_SPACES}]))\$([a-z]{{1,6}}(?:[._][a-z]{{1,2}})?){_CASHTAG_BOUNDARY}", re.IGNORECASE)
MENTION = re.compile(r"(?<![a-z0-9_!#$%&*@＠])[@＠]([a-z0-9_]{1,20})(?![a-z0-9_@＠]|://)", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+")
