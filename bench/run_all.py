"""``make bench``: every benchmark, each printing ratios against its in-process baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["engine.py", "memory.py", "api.py", "startup.py", "reads.py", "oauth.py"]

if __name__ == "__main__":
    failed = []
    for name in BENCHES:
        path = HERE / name
        if not path.exists():
            continue
        print(f"\n=== {name} ===", flush=True)
        if subprocess.call([sys.executable, str(path), *sys.argv[1:]]) != 0:
            failed.append(name)
    sys.exit(1 if failed else 0)
