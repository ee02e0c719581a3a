"""Engagement: sample how the agent's posts are received, and let it matter.

``engagement.sample`` runs when the agent's next sample falls due (of its posts, or the
first of its next scheduled post; at least every ``ENGAGEMENT_CHECK_SECONDS`` for posts
off the schedule), finds the posts whose next sampling slot (``ENGAGEMENT_SAMPLE_HOURS``
after posting: 1 h, 6 h, 24 h, 72 h; up to a tenth of the delay early) has come, reads their public metrics in batches
of at most 100 ids per call within the learned rate limits, and records one sample per
post and slot. A spent window ends the round: what was read is kept, the rest waits
for the window's reset. Samples carry the key of the event that took them, so a
retried event finds its earlier attempt's samples, reads only the rest and applies
every effect once:

- a settled post (sampled at 24 h or later) sets the importance of its memory from its
  score (better than usual → more important);
- the first time a post settles, the agent's mood moves with its score;
- with ``behavior.post_frequency.learn_peak_hours`` the peak posting hours are learnt
  again from the settled posts by hour of day.

Samples of posts older than ``ENGAGEMENT_RETENTION_DAYS`` are pruned once a day.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime

import structlog

from puppet_engine.agents import engagement as eng
from puppet_engine.agents.behaviors.base import Behavior, BehaviorHandler
from puppet_engine.agents.mood import Mood, after_engagement
from puppet_engine.agents.runtime import AgentRuntime
from puppet_engine.errors import RateLimited
from puppet_engine.events import Event, HandlerResult
from puppet_engine.social.base import PostMetrics
from puppet_engine.social.recording import note_metrics
from puppet_engine.storage.repos.engagement import Sample, TrackedPost

log = structlog.get_logger("puppet_engine.engagement")

BATCH = 100  # ids per lookup: X's maximum for GET /2/tweets
MAX_WAIT = 5.0  # seconds a round waits for a spent rate-limit window before leaving the rest for later
MIN_GAP = 60.0  # never check again sooner than this
DAY = 24 * 3600.0
HOUR = 3600.0


class EngagementBehavior(Behavior):
    name = "engagement"

    def handlers(self) -> dict[str, BehaviorHandler]:
        return {"engagement.sample": self.on_sample}

    async def bootstrap(self, agent: AgentRuntime, pending: Set[str]) -> list[Event]:
        if "engagement.sample" in pending:
            return []
        now = self.services.clock.now()
        first = self.services.engagement.sample_hours[0] * HOUR  # a new agent's first post is due within minutes
        due = now + agent.rng.uniform(0.5, 1.0) * first
        return [Event("engagement.sample", agent.id, due_at=due, key=f"engagement.sample:{agent.id}:{int(now)}")]

    async def on_sample(self, event: Event, agent: AgentRuntime) -> HandlerResult:
        plan, store, now = self.services.engagement, self.services.engagement_store, self.services.clock.now()
        key = event.key or f"engagement.sample:{event.id}"
        posts = await store.tracked_posts(agent.id, now - plan.window)
        already = {s.post_id for s in await store.taken_by(key)}  # an interrupted earlier attempt
        due = [(p, slot) for p in posts if p.post_id not in already and (slot := plan.due_slot(p, now)) is not None]
        calls, retry_after, supported = 0, None, True
        for start in range(0, len(due), BATCH):
            batch = due[start:start + BATCH]
            try:
                batch_ids = [p.post_id for p, _ in batch]
                found = await agent.social.get_metrics(batch_ids, max_wait=MAX_WAIT)
                note_metrics(batch_ids, found)  # for replay
            except NotImplementedError as exc:  # a network (or dry run) without metrics
                note_metrics(batch_ids, error=exc)  # for replay
                supported = False
                break
            except RateLimited as exc:
                note_metrics(batch_ids, error=exc)
                retry_after = exc.retry_after
                log.info("engagement_rate_limited", agent_id=agent.id, retry_after=round(exc.retry_after, 1),
                         left=len(due) - start)
                break
            calls += 1
            await store.record([self._sample(agent, p, slot, found.get(p.post_id), now) for p, slot in batch], key)
        taken = await store.taken_by(key)
        state_changes, effects = await self._effects(agent, taken, now)
        if now - ((await self.services.states.get(agent.id)).engagement_pruned_at or 0.0) >= DAY:
            pruned = await store.prune(agent.id, now - plan.kept)
            state_changes["engagement_pruned_at"] = now
            effects["pruned"] = pruned
        nxt = self._next(posts, taken, now, retry_after, (await self.services.states.get(agent.id)).next_post_at)
        follow = [Event("engagement.sample", agent.id, due_at=nxt, key=f"engagement.sample:{agent.id}:{event.id}")]
        result = {"due": len(due), "sampled": len(taken), "calls": calls, "rate_limited": retry_after is not None,
                  "supported": supported, **effects}
        return HandlerResult(result=result, follow_ups=follow if supported else [], state=state_changes)

    def _sample(self, agent: AgentRuntime, post: TrackedPost, slot: int, metrics: PostMetrics | None,
                now: float) -> Sample:
        hour = datetime.fromtimestamp(post.posted_at, agent.config.tz).hour
        if metrics is None:  # deleted or no longer visible
            return Sample(agent.id, post.post_id, post.posted_at, hour, slot, now, gone=True)
        return Sample(agent.id, post.post_id, post.posted_at, hour, slot, now, likes=metrics.likes,
                      replies=metrics.replies, reposts=metrics.reposts, quotes=metrics.quotes,
                      bookmarks=metrics.bookmarks, impressions=metrics.impressions)

    def _next(self, posts: list[TrackedPost], taken: list[Sample], now: float, retry_after: float | None,
              next_post_at: float | None) -> float:
        """The next round: when the soonest slot falls due — of the posts known, or the first slot
        of the next scheduled post — else after ``check_seconds`` (posts off the schedule)."""
        plan = self.services.engagement
        if retry_after is not None:
            return now + max(MIN_GAP, retry_after)
        just = {(s.post_id, s.slot) for s in taken}
        soonest = now + plan.check_seconds
        if next_post_at is not None and next_post_at + plan.sample_hours[0] * HOUR > now:
            soonest = min(soonest, next_post_at + plan.sample_hours[0] * HOUR)
        for post in posts:
            updated = TrackedPost(post.post_id, post.posted_at, post.text,
                                  post.taken | {slot for pid, slot in just if pid == post.post_id})
            when = plan.next_due(updated, now)
            if when is not None:
                soonest = min(soonest, when)
        return max(now + MIN_GAP, soonest)

    async def _effects(self, agent: AgentRuntime, taken: list[Sample], now: float) -> tuple[dict, dict]:
        """Memory importance, mood and learnt peak hours for the settled samples in ``taken``."""
        plan = self.services.engagement
        judged = [s for s in taken if s.slot >= plan.judge_slot and not s.gone]
        if not judged:
            return {}, {}
        history = await self.services.engagement_store.samples(agent.id, now - plan.kept)
        settled = eng.settled(history, plan)
        state = await self.services.states.get(agent.id)
        mood = Mood.from_state(state.mood)
        scores: dict[str, float] = {}
        moves: list[float] = []
        for sample in judged:
            usual = eng.usual_value(settled, excluding=sample.post_id)
            scores[sample.post_id] = eng.score(eng.value(sample), usual)
            earlier = [s for s in history if s.post_id == sample.post_id and plan.judge_slot <= s.slot < sample.slot]
            if not earlier:  # the post settles now: the mood moves once per post
                mood = after_engagement(mood, scores[sample.post_id])
                moves.append(scores[sample.post_id])
        changes: dict = {}
        if moves:
            changes["mood"] = mood.to_state()
        overall = eng.summary(settled, plan, top=0)
        effects: dict = {"settled": len(judged), "scores": scores, "mood_moves": moves,
                         "memories": await self._reweigh(agent, judged, scores), "rate": overall["rate"],
                         "interactions_per_post": overall["interactions_per_post"]}
        freq = agent.config.behavior.post_frequency
        if freq.learn_peak_hours:
            learned = eng.learn_peak_hours(freq.peak_posting_hours, eng.by_hour(settled))
            if learned is not None and learned != state.learned_peak_hours:
                changes["learned_peak_hours"] = learned
                log.info("peak_hours_learned", agent_id=agent.id, hours=learned,
                         configured=list(freq.peak_posting_hours))
            effects["peak_hours"] = learned
        return changes, effects

    async def _reweigh(self, agent: AgentRuntime, judged: list[Sample], scores: dict[str, float]) -> int:
        """Set each settled post's memory importance from its score; how many memories changed."""
        if agent.memory is None:
            return 0
        changed = 0
        for sample in judged:
            memories = await agent.memory.list_memories(agent.id, kind="post", since=sample.posted_at - 600,
                                                        until=sample.posted_at + 600, limit=20)
            for memory in memories:
                if memory.metadata.get("external_id") == sample.post_id and memory.id is not None:
                    await agent.memory.update(agent.id, memory.id, importance=eng.importance_for(scores[sample.post_id]))
                    changed += 1
        return changed
