"""Shared fixtures: the real Omniglot data (shared/data/omniglot beside the repository), fetched once."""
from pathlib import Path

import pytest

SHARED_OMNIGLOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"


@pytest.fixture(scope="session")
def omniglot_data(tmp_path_factory) -> Path:
    """A data folder holding the decoded Omniglot cache, fetched from the shared archives through the CLI."""
    from click.testing import CliRunner

    from suite.cli import main

    if not (SHARED_OMNIGLOT / "images_background.zip").is_file():
        pytest.skip(f"the real Omniglot archives are not in {SHARED_OMNIGLOT}")
    data = tmp_path_factory.mktemp("omniglot") / "datasets"
    result = CliRunner().invoke(main, ["--data", str(data), "fetch", "omniglot", "--no-progress",
                                       "--from", str(SHARED_OMNIGLOT)])
    assert result.exit_code == 0, result.output
    return data


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true",
                     help="rewrite tests/goldens/ from this run (test_goldens.py), instead of comparing with it")
