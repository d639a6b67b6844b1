"""The example notebooks run from top to bottom, so they cannot rot."""

import os

import pytest
from helpers import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = REPO / "examples"


@pytest.mark.skipif(not os.environ.get("BLADEFL_DATA"), reason="set BLADEFL_DATA to the real datasets (CI does)")
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("BLADEFL_CACHE", str(tmp_path / "cache"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(EXAMPLES)}})
    client.execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code"
              for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors
    plots = [cell for cell in nb.cells if cell.cell_type == "code" and "matplotlib" in cell.source]
    assert plots, "the notebook draws no figure"
    for cell in plots:
        # A figure shown is a PNG in the output; a bare Figure object is only its text repr.
        assert any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])), cell.source[:80]
