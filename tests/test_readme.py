"""The README's Python block runs as written, in a fresh interpreter that composes the config
before it imports gancompare (the order a notebook takes)."""

from __future__ import annotations

import json
import re

from conftest import ROOT, run_cli


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- python-snippet -->\n```python\n(.*?)```\n<!-- /python-snippet -->",
                      text, re.S)
    assert match, "README.md lost its <!-- python-snippet --> block"
    return match.group(1)


def test_the_readme_python_block_trains_reads_the_summary_and_samples(tmp_path):
    code = readme_snippet()
    assert code.index("compose(") < code.index("gancompare")  # composed before the import
    (tmp_path / "conf").symlink_to(ROOT / "conf")  # "from the repository root"
    script = tmp_path / "snippet.py"
    script.write_text(code)
    out = run_cli(str(script), cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    status, verdict, fid = out.stdout.splitlines()[-2].split()
    run = tmp_path / "outputs/runs/from-python"
    summary = json.loads((run / "summary.json").read_text())
    assert (status, verdict) == ("finished", summary["verdict"]) and summary["steps"] == 20
    assert float(fid) == round(summary["eval"]["fid_mnist_cnn"], 1) > 0
    assert out.stdout.splitlines()[-1] == "step 20 of last.pt: (16, 1, 28, 28)"
