"""make demo: the FastAPI shop, released, refused, rolled back and flagged under load."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


class TestDemo:
    def test_demo_serves_every_request_through_release_refusal_and_rollback(self) -> None:
        """The demo exits 0; both releases served, the new route and field came and went."""
        done = subprocess.run(
            [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        report = done.stdout
        assert re.search(r"requests failed\s+0\n", report)
        served = {m[0]: int(m[1]) for m in re.findall(r"served by (v\d)\s+(\d+)", report)}
        assert set(served) == {"v1", "v2"}
        assert all(count > 0 for count in served.values())
        assert "v3 refused" in report
        assert re.search(r"after v2\s+release v2, currency EUR, /stock 200\n", report)
        assert re.search(r"after rollback\s+release v1, currency -, /stock 404\n", report)
        flows = {
            (m[0], m[1]): int(m[2])
            for m in re.findall(r"(premium|free)\s+(new|classic)\s+flow (\d+)", report)
        }
        assert flows[("premium", "new")] > 0
        assert ("free", "new") not in flows
