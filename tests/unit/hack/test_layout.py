"""The repository's layout rules: source roots are not packages, and stdlib stays stdlib."""

from __future__ import annotations

import subprocess
import sys

from tests.support.cluster import REPO


def test_source_roots_have_no_init() -> None:
    for root in ("operator", "router"):
        assert not (REPO / root / "__init__.py").exists(), f"{root}/ must not be a package"


def test_import_operator_is_the_standard_library_from_repo_root() -> None:
    code = "import operator, sys; print(operator.__file__); print(operator.itemgetter(1)([0, 7]))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    path, value = proc.stdout.splitlines()
    assert str(REPO) not in path
    assert value == "7"


def test_import_operator_under_pytest_is_the_standard_library() -> None:
    import operator

    assert hasattr(operator, "attrgetter")
    assert str(REPO / "operator") not in str(getattr(operator, "__file__", ""))
