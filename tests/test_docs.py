"""Every ```python block of the README and the docs runs, in order, one namespace per page."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from illunare._reload.importer import HotFinder

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = [
    page
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    if BLOCK.search(page.read_text())
]


@pytest.fixture
def empty_directory(tmp_path: Path) -> Iterator[Path]:
    """Run in an empty directory; forget the modules and import hooks a page created."""
    before_path = list(sys.path)
    before_hooks = list(sys.meta_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(cwd)
        sys.path[:] = before_path
        # Python 3.10 binds the finder of a relative entry such as "." to the
        # directory it was first used in: forget it, as each page has its own.
        for entry in [entry for entry in sys.path_importer_cache if not os.path.isabs(entry)]:
            del sys.path_importer_cache[entry]
        sys.meta_path[:] = [
            f for f in sys.meta_path if f in before_hooks or not isinstance(f, HotFinder)
        ]
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if file.startswith(str(tmp_path)):
                del sys.modules[name]


def test_the_guides_have_examples() -> None:
    """The README, the home page and the user guide all show runnable code."""
    assert {page.name for page in PAGES} >= {"README.md", "index.md", "hot-swapping.md"}


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_examples_run(page: Path, empty_directory: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The page's examples run as written; none of their signal receivers fails (logged)."""
    blocks = BLOCK.findall(page.read_text())
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{page.name} example {number}", "exec")
        exec(code, namespace)
    failed = [r.getMessage() for r in caplog.records if r.msg == "a receiver of %s failed"]
    assert not failed, failed
