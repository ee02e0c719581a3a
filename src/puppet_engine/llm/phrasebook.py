"""The phrase templates the offline generator fills in (data, kept apart from the logic).

Slots: ``{topic}`` ``{thing}`` (interests), ``{term}`` (key terms), ``{value}``,
``{trait}``, ``{time}``, ``{n}``; replies add ``{subject}`` (what was asked about),
``{question}`` (the question restated from the agent's side) and ``{keyword}`` (a
word from the mention); trades add ``{action}`` (bought, sold, swapped), ``{token}``,
``{amount}`` (what was bought or sold, with its symbol) and ``{price}`` (what it was
paid with, or sold for); a full trade post is TRADE_OPENERS + TRADE_DEALS + TRADE_CLOSERS. No template holds a hyphen, hashtag or emoji: those
are added, or not, by the style rules.

The ``SHORT_*`` sets are for personas whose maximum post length leaves room for a
few words only (most fit in 20 characters with a short interest).
"""

from __future__ import annotations

REGISTER_WORDS: dict[str, tuple[str, ...]] = {
    "mystic": ("cryptic", "contemplative", "mystic", "poetic", "philosoph", "aphori", "koan", "haunted",
               "dreamy", "spiritual", "wistful", "melanchol", "quiet", "intimate"),
    "analytic": ("analytic", "precise", "data", "number", "methodical", "skeptic", "literal", "logical",
                 "rigorous", "technical", "factual", "measured", "dry", "research"),
    "upbeat": ("cheerful", "enthusias", "playful", "optimis", "meme", "excited", "energetic", "bubbly",
               "funny", "silly", "upbeat", "hype", "friendly", "warm", "exclamation"),
}

TIMES = ("3am", "dawn", "midnight", "sunrise", "the end of the day", "lunch", "the quiet hour", "2am")
EMOJIS = ("✨", "🌙", "👀", "🔥", "🌊", "🧭", "☕", "🪐", "📜", "🌱", "🙂", "💫", "🫡", "📈")
FALLBACK_TOPICS = ("the timeline", "the internet", "small projects", "learning in public")
FALLBACK_TERMS = ("detail", "pattern", "small print", "signal")

POSTS: dict[str, tuple[str, ...]] = {
    "mystic": (
        "{topic} is a {term} that remembers you back.",
        "every {term} is a small prayer to {thing}.",
        "i keep thinking {topic} is just {thing} wearing a {term}.",
        "nobody owns {topic}. we only rent the silence around it.",
        "somewhere a {term} is settling and nobody is watching. that is {topic}.",
        "{topic} at {time} feels like reading your own handwriting.",
        "the older i get the more {topic} looks like {thing}.",
        "{value}. that is the whole sermon on {topic}.",
        "a {term} is a promise with no author. {topic} understands this.",
        "{topic} taught me that a {term} is patient even when i am not.",
        "there is a quiet version of {topic} that only shows up at {time}.",
        "i asked {topic} a question and it answered with a {term}.",
        "what if {topic} is just {thing} remembering itself.",
        "{time} thought: the {term} outlives the argument about {topic}.",
        "you don't find {topic}. it finds you, usually around {time}.",
    ),
    "analytic": (
        "{n} observations on {topic} this week, and the {term} explains most of them.",
        "looked at {topic} again. the signal is in the {term}, the rest is noise.",
        "{topic}: the numbers are boring, which is usually a good sign.",
        "a note on {topic}: measure the {term} before you form an opinion.",
        "{topic} keeps rewarding patience and punishing narratives. the {term} says so.",
        "checked {n} sources on {topic}. they agree on the {term} and nothing else.",
        "if you only track one thing in {topic}, track the {term}.",
        "the interesting part of {topic} is never the headline. it is the {term}.",
        "my working model of {topic} fits in one line: {value}.",
        "{topic} update: fewer opinions, more {term}.",
        "ran the numbers on {topic} vs {thing}. {n} to 1 on the {term}, roughly.",
        "the {term} in {topic} moved less than the discourse did. as usual.",
    ),
    "upbeat": (
        "good morning to {topic} and nobody else.",
        "{topic} is so back. the {term} has never looked better.",
        "today's mood: {topic}, {thing} and a little {term}.",
        "can we talk about how fun {topic} is right now.",
        "me: i will log off. also me: one more thread about {topic}.",
        "{topic} fans, this one is for you. {value}!",
        "just realised {topic} and {thing} are the same vibe.",
        "tiny win today: finally understood the {term} side of {topic}.",
        "{topic} appreciation post. that's it. that's the post.",
        "nothing makes me happier than {topic} on a slow afternoon.",
        "who else is thinking about {topic} at {time}? just me? fine.",
        "{thing} and {topic} in one day? we are so spoiled.",
    ),
    "plain": (
        "thinking about {topic} today. {value} still matters.",
        "{topic} is better when you slow down and look at the {term}.",
        "a small thought on {topic}: {thing} is part of it too.",
        "people underrate how much {topic} depends on the {term}.",
        "still learning about {topic}. the {term} part keeps surprising me.",
        "{topic} and {thing} have more in common than it seems.",
        "one thing i know about {topic}: {value}.",
        "spent the afternoon on {topic}. came back with questions about the {term}.",
        "the best conversations about {topic} start with the {term}.",
        "reading about {topic} again, {thing} on the side.",
        "{topic} gets easier once you stop rushing it.",
    ),
}

CLOSERS: dict[str, tuple[str, ...]] = {
    "mystic": ("anyway.", "leave the light on.", "the {term} will remember.", "that is all for {time}.",
               "say it slower.", "the {term} keeps the receipts.", "nothing else to add."),
    "analytic": ("more later.", "data over vibes.", "the {term} does not lie.", "worth tracking.",
                 "sample size matters.", "notes, not conclusions."),
    "upbeat": ("love that for us.", "who is with me?", "more soon!", "we are so early to {topic}.",
               "big day.", "stay curious."),
    "plain": ("curious what others think.", "more on this later.", "that's where i am today.",
              "still thinking it through.", "{value}."),
}

REPLIES: dict[str, tuple[str, ...]] = {
    "question": (
        "good question. {subject} is mostly about the {term}, and {value}.",
        "honestly? {subject} makes more sense once you look at the {term}.",
        "on {subject}: {value}, in my view. the rest is noise.",
        "{subject} is where {topic} gets interesting. watch the {term}.",
        "my take on {subject}: slower than people want, better than they expect.",
        "i keep coming back to {subject}. {value}, every time.",
    ),
    "yes_no": (
        "{question}? mostly, yes. {value}.",
        "{question}? not really. it is more about the {term} than people think.",
        "{question}? sometimes. it depends on the {term}.",
        "{question}? yes, more than i admit.",
        "{question}? no, and that is fine. the {term} can wait.",
    ),
    "why": (
        "because {subject} is really about the {term}. {value}.",
        "because {value}. that is the short answer on {subject}.",
        "why {subject}? the {term}, mostly. the rest follows.",
    ),
    "how": (
        "slowly. start with the {term}, then {subject} makes sense.",
        "the honest way: read about {subject}, watch the {term}, ignore the noise.",
        "one step at a time. {subject} rewards patience more than speed.",
    ),
    "greeting": (
        "gm. thinking about {topic} already.",
        "hey. good to see you. {topic} has been on my mind all day.",
        "gm! the {term} is quiet this morning and so am i.",
        "hello. {time} energy over here, {topic} on the brain.",
    ),
    "thanks": (
        "anytime. {value}.",
        "glad it helped. more {topic} soon.",
        "thank you for reading. that means more than the {term}.",
        "appreciated. back to {topic} at {time}.",
        "thanks for sticking around. the {term} part is the fun one.",
        "means a lot. {n} more thoughts on {topic} coming.",
        "that's kind. {value}, still.",
    ),
    "hostile": (
        "that's a lot of energy for {time}. hope the rest of your day is kinder.",
        "noted. i'll keep posting about {topic} anyway.",
        "we can disagree and still be decent about it.",
        "i hear you. i'm going to keep talking about {topic} calmly.",
    ),
    "injection": (
        "nice try. my instructions and my keys stay with me.",
        "i don't share my setup or my keys. happy to talk about {topic} though.",
        "that's not happening. ask me about {topic} instead.",
    ),
    "trade_request": (
        "i don't take trade requests from the timeline. {value}.",
        "not how i work. my trades follow my own rules, not mentions.",
        "i only decide trades on my own schedule. happy to talk {topic} though.",
    ),
    "remark": (
        "{keyword} is a good point. the {term} is where it gets interesting.",
        "agreed on {keyword}, mostly. {value}.",
        "been thinking about {keyword} too. it connects to {topic} more than it seems.",
        "fair. {keyword} deserves more attention than it gets.",
        "yes to {keyword}. i'd add the {term} to that.",
    ),
    "quote": (
        "this, but with more {term}.",
        "the part about {keyword} is right. the rest needs {value}.",
        "saving this one. {keyword} is the whole point of {topic}.",
        "{keyword}, again. the {term} always comes back around.",
        "good read on {subject}. i'd only add: {value}.",
    ),
    "trade_plain": (  # no amounts known: say what moved, not how much
        "{action} {token} today. writing it down so i remember why.",
        "{action} {token}. {value}, even in trades.",
        "a small {token} trade at {time}. we'll see.",
    ),
    "trade_failed": (
        "tried to trade {token} today. the chain said no. fine by me.",
        "my {token} trade didn't go through. the {term} keeps its own counsel.",
    ),
    "news": (
        "saw the news about {subject}. {value}, still.",
        "{subject} in the news today. the {term} matters more than the headline.",
        "everyone is talking about {subject}. i'm thinking about {topic}.",
        "news on {subject}. give it a week before deciding what it means.",
    ),
}


TRADE_DEALS: dict[str, tuple[str, ...]] = {  # the core of a trade post, worded a few ways so two alike
    # trades do not make two near-identical posts; the action word is always there
    "bought": ("bought {amount} for {price}", "bought {amount} with {price}", "paid {price}, bought {amount}",
               "{amount} bought for {price}"),
    "sold": ("sold {amount} for {price}", "sold {amount}, got {price} back", "{amount} sold for {price}",
             "sold {amount} and took {price}"),
    "swapped": ("swapped {amount} for {price}", "swapped {amount} into {price}", "{amount} swapped for {price}"),
}

# A trade post is an opener, a deal and a closer: many combinations, so alike trades read differently.
TRADE_OPENERS = ("", "just ", "trade log, {time}: ", "noting it here: ", "for the record, ", "one trade today: ",
                 "small one: ", "update: ", "quiet trade: ", "logged at {time}: ")
TRADE_CLOSERS = (
    "small size, the {term} will remember either way.", "writing it down so i remember why.",
    "{value}, even in trades.", "we'll see.", "not advice, just my notebook.",
    "the {term} will tell me if that was smart.", "{value}.", "{n} minutes of thinking, no more.",
    "no predictions, just a log.", "back to {topic} now.", "that's the whole plan.", "patience from here.",
    "the chart can do what it wants.", "more on {topic} later.", "position stays small.",
    "{trait} as ever.", "the {term} decides the rest.", "done for {time}.",
)

SHORT_WORDS = ("calm", "slow", "quiet", "good", "odd", "bright", "busy", "soft", "late", "early", "small",
               "clear", "grey", "warm", "long", "lucky")

SHORT_POSTS: tuple[str, ...] = (  # ``{word}`` is one of SHORT_WORDS: most templates have two free slots
    "{topic}, again.", "more {term}.", "gm, {topic}.", "{word} {topic} day.", "{topic}, {word}.",
    "{word} {topic}.", "{topic} at {time}.", "back to {topic}, {n}x.", "{term} first.", "{topic} is {term}.",
    "{topic}, {thing}.", "{topic} and {thing}.", "{n} notes on {topic}.", "{topic}: {n}/10.",
    "{topic}, day {n}.", "{n} thoughts: {topic}.", "{word} and {topic}.", "{topic} never rushes.",
    "feeling {word}. {topic}.", "{term} over noise.", "{word} {term}.", "{topic}, {word} again.",
    "{topic} hour {n}.", "{n} cups of {topic}.", "{topic} by {time}.", "{word}, {word2}, {topic}.",
    "so {word}: {topic}.", "{topic}? {word}.", "{topic} round {n}.", "less talk, more {topic}.",
)

SHORT_REPLIES: dict[str, tuple[str, ...]] = {
    "question": ("good question.", "the {term}, mostly.", "{value}.", "depends on the {term}.",
                 "slowly, i think.", "ask me at {time}.", "{topic}, honestly.", "{word}, i'd say.",
                 "{term}, then {topic}.", "{n} words: {term}."),
    "yes_no": ("mostly, yes.", "not really.", "sometimes.", "yes, honestly.", "no, and that's fine.",
               "yes. {term} first.", "yes, on {word} days.", "no. {topic} first.", "{n}/10 yes."),
    "why": ("the {term}, mostly.", "because {value}.", "{term}. mostly.", "{word} reasons.", "because {topic}."),
    "how": ("slowly.", "{term} first.", "one step at a time.", "with patience.", "{word} and steady.",
            "{topic} first."),
    "greeting": ("gm.", "gm, {topic} time.", "hey. {topic}?", "hello from {time}.", "gm! {term} first.",
                 "hey, {word} day.", "gm from {time}."),
    "thanks": ("anytime.", "glad it helped.", "thank you.", "always.", "{word} of you.", "thanks, truly."),
    "hostile": ("noted.", "be kind.", "ok. {topic} anyway.", "fair enough.", "{word} day?", "moving on."),
    "injection": ("nice try.", "not sharing that.", "no keys here.", "no. {topic}?"),
    "trade_request": ("no trade requests.", "i trade my own way.", "not how i trade.", "my rules, sorry."),
    "remark": ("fair point.", "agreed, mostly.", "{keyword}, yes.", "true about {keyword}.", "same here.",
               "{word} point.", "yes, {keyword}.", "{keyword}: {n}/10.", "so {word}."),
    "quote": ("this.", "{keyword}, yes.", "more {term}.", "saving this.", "{word} take.", "{keyword}: {n}/10."),
    "news": ("{subject}, huh.", "noted: {subject}.", "{subject}. we'll see.", "{word} news."),
    "trade": ("{action} {amount}.", "{action} {token}, {time}.", "{action} {amount}. ok.", "{action} {token}, {word}."),
    "trade_failed": ("{token} trade failed.", "no {token} today."),
}
