"""``notebooks/decision_review.ipynb`` runs top to bottom against a database filled by a replay.

The notebook is executed in a real Jupyter kernel (nbclient + ipykernel, this virtualenv's Python) with
``TRIPLEGAIN_DATABASE_URL`` pointing at a copy of the replay's database (``test_review_queries``). A cell that
raises fails the test with the cell and its traceback.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.review_data import ReviewTemplate, review_database_url

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "decision_review.ipynb"


@pytest.fixture(scope="module")
def review_url(request: pytest.FixtureRequest, postgres_url: str, review_template: ReviewTemplate) -> str:
    return review_database_url(request, postgres_url, review_template)


def test_the_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(not cell.outputs and cell.execution_count is None for cell in code)


def test_the_notebook_runs_top_to_bottom(
    review_url: str, review_template: ReviewTemplate, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", review_url)
    # The kernel's own files go to this test's folder, not the user's home.
    for variable in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.text for output in outputs if output.output_type == "stream" and output.name == "stdout")
    images = [output for output in outputs if {"image/png", "image/svg+xml"} & set(output.get("data", {}))]
    assert len(images) == 5, text  # confidence, conflicts, LLM calls, equity, trades
    ids = review_template.data
    assert f"latest daemon run: {ids.run_b} of paper" in text
    assert "decisions: {'buy': " in text
    assert "1 failed, $0.0013 in all" in text  # the DeepSeek timeout, and the answer's cost
    assert "nothing to draw" not in text
