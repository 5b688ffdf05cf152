"""make demo: the shop released, refused, rolled back, flagged, deployed; a service plugged in."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


@pytest.fixture(scope="module")
def report() -> str:
    """What the demo printed; it ran once, to its end, and exited 0."""
    done = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class TestDemo:
    def test_demo_serves_every_request_through_release_refusal_and_rollback(
        self, report: str
    ) -> None:
        """The demo exits 0; both releases served, the new route and field came and went."""
        assert re.search(r"requests failed\s+0\n", report)
        served = {m[0]: int(m[1]) for m in re.findall(r"served by (v\d)\s+(\d+)", report)}
        assert {"v1", "v2", "v4"} <= set(served) <= {"v1", "v2", "v4", "v5", "v6"}
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

    def test_demo_deployments_succeed_or_undo_themselves_without_failing_a_request(
        self, report: str
    ) -> None:
        """v4 succeeds; v5 (migration) and v6 (health gate) roll back; v6's bug met in its bake."""
        assert re.search(r"deployment v4: 2 modules \+ config\s+succeeded: .*ConfigUpdate", report)
        assert re.search(
            r"deployment v5: failing migration\s+rolled_back: HotSwap shop.routes undone, "
            r"ConfigUpdate markup_percent undone, Migration add loyalty_points column failed\n",
            report,
        )
        assert re.search(r"deployment v6: bad code, gated\s+rolled_back: .*undone\n", report)
        assert "health gate breached: error_rate" in report
        for after in ("v4", "v5", "v6"):
            assert re.search(rf"after {after}\s+release v4, apple 132 cents\n", report)
        assert re.search(r"requests failed because of a deployment\s+0\n", report)
        assert re.search(r"requests that met v6's bug after it\s+0\n", report)
        during = re.search(r"requests that met v6's bug during its bake\s+(\d+)\n", report)
        assert during is not None
        assert int(during[1]) > 0

    def test_demo_unloads_the_reports_service_without_cutting_a_request(self, report: str) -> None:
        """reports served; requests in flight completed; 503 only once unload began; 404 after."""
        assert re.search(r"reports load\s+succeeded", report)
        served = re.search(r"reports requests served\s+(\d+)\n", report)
        assert served is not None
        assert int(served[1]) > 0
        assert re.search(
            r"reports in flight at unload\s+4, completed 4, on the running service 4\n", report
        )
        refused = re.search(r"reports 503 while draining\s+(\d+), the first", report)
        assert refused is not None
        assert int(refused[1]) > 0
        assert re.search(r"reports 503 before unload began\s+0\n", report)
        gone = re.search(r"reports 404 after unload\s+(\d+)\n", report)
        assert gone is not None
        assert int(gone[1]) > 0
        assert re.search(r"reports requests failed\s+0\n", report)

    def test_demo_canaries_promote_roll_back_and_shadow_with_requests_per_version(
        self, report: str
    ) -> None:
        """v7 promoted; v8 rolled back at 10 % for good; v9's shadow finds mismatches."""
        promoted = re.search(r"canary v7 promoted  requests old (\d+) new (\d+)\n", report)
        assert promoted is not None
        assert int(promoted[1]) > 0
        assert int(promoted[2]) > 0
        rolled_back = re.search(
            r"canary v8 rolled_back at 10%  requests old (\d+) new (\d+)  errors (\d+)\n", report
        )
        assert rolled_back is not None
        old, new, errors = map(int, rolled_back.groups())
        assert old > new > 0
        assert 0 < errors < new
        shadow = re.search(r"shadow v9  calls (\d+) mismatches (\d+) errors 0\n", report)
        assert shadow is not None
        assert int(shadow[1]) > 0
        assert int(shadow[2]) > 0
        assert re.search(r"requests that met v8's bug after its rollback\s+0\n", report)
        assert "FAILED" not in report
