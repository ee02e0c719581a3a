"""Crash-recovery soak at CI size: 20 SIGKILLs of a real engine process under a busy crowd.

The harness is ``bench/soak.py`` (run it directly for hundreds of kills); this test
runs it with 20 kills (3 posting agents and a trader) and requires no duplicate post,
reply or trade, nothing lost and a consistent database.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def load_soak():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("puppet_bench_soak", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_twenty_sigkills_never_duplicate_or_lose_anything(tmp_path: Path) -> None:
    soak = load_soak()
    report = soak.run_soak(soak.SoakConfig(kills=20, agents=3, crowd_rate=120, seed=3, max_alive=1.5,
                                           workdir=tmp_path))
    summary = {k: v for k, v in report.to_dict().items() if k != "problems"}
    assert report.problems == [], (summary, report.problems[:20])
    assert report.kills == 20
    assert report.duplicates == 0
    # It did real work between the kills: mentions came, were recorded and answered, posts went out.
    assert report.crowd_mentions >= 20 and report.mentions_recorded >= report.crowd_mentions, summary
    assert report.replies >= 10 and report.posts >= 1, summary
    assert report.events_retried >= 1, summary  # some events were interrupted and run again
    # The trader traded on the sandbox chain; each trade row has its own signature, known to the chain.
    assert sum(report.trades.values()) >= 1 and report.trades_landed >= 1, summary
