"""Every Python block of docs/training.md and docs/kfac.md runs as written (from a scratch folder holding configs/)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = [(doc, i, code) for doc in ("docs/training.md", "docs/kfac.md")
          for i, code in enumerate(re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), re.S))]


def test_the_docs_have_python_blocks():
    assert {doc for doc, _, _ in BLOCKS} == {"docs/training.md", "docs/kfac.md"}


@pytest.mark.parametrize("doc,i,code", BLOCKS, ids=[f"{d}#{i}" for d, i, _ in BLOCKS])
def test_python_block_runs(doc, i, code, tmp_path, monkeypatch):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{doc} block {i}", "exec"), {"__name__": f"doc_block_{i}"})
