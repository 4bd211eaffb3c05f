"""Every claim points at its test, on whatever page it now lives: each test the old, long README
cited still appears in the documentation, and every test the documentation cites exists.

`readme_citations.txt` holds what the README cited before it became the docs/ site (main at
e2e12c1), collected with `citations()` below; to collect them from another text:
`.venv/bin/python -m tests.docs.test_citations OLD_README.md`.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).parents[2]
TESTS = ROOT / "tests"
FROZEN = Path(__file__).with_name("readme_citations.txt")
# `tests/a/test_b.py`, `tests/a/test_b.py::test_c` (a trailing * names every test it starts),
# or a test named alone in backticks: `test_c`, `::test_c` (a test of the file cited before it)
CITATION = re.compile(r"tests/[\w/.-]+\.py(?:::[\w*]+)?|(?<=`)(?:::)?test_\w+\*?(?=`)")
# what the site shows: its pages, and the two READMEs its pages include (pymdownx.snippets)
DOCUMENTED = ["docs/**/*.md", "benchmarks/README.md", "demo/README.md", "README.md"]


def citations(text: str) -> list[str]:
    return sorted(set(CITATION.findall(text)))


def documentation() -> str:
    return "\n".join(p.read_text() for pattern in DOCUMENTED for p in sorted(ROOT.glob(pattern)))


@cache
def defined_tests() -> dict[str, set[str]]:
    """Test file (relative to the root) -> the test functions and classes it defines."""
    return {
        str(path.relative_to(ROOT)): set(
            re.findall(r"^\s*(?:async )?(?:def|class) (test_\w+|Test\w*)", text, re.M)
        )
        for path in TESTS.rglob("test_*.py")
        if (text := path.read_text())
    }


def exists(citation: str) -> bool:
    """Whether the cited test file, test module or test function is in the repository."""
    path, _, name = citation.rpartition("::") if "::" in citation else (citation, "", "")
    if citation.startswith("test_") or citation.startswith("::"):
        path, name = "", citation.removeprefix("::")
    files = defined_tests()
    if path and not name:
        return (ROOT / path).is_file()
    if name.endswith("*"):
        matches = [n for f, names in files.items() if not path or f == path for n in names]
        return any(n.startswith(name[:-1]) for n in matches)
    if not path:
        return any(name in names for names in files.values()) or any(Path(f).stem == name for f in files)
    return name in files.get(path, set())


def test_the_citation_pattern_finds_files_tests_and_bare_names() -> None:
    text = (
        "see `tests/a/test_b.py::test_c`, `tests/a/test_d.py`, `test_e` and "
        "(`::test_f`, `tests/a/test_g.py::test_h_*`); not pytest's test_ids/x"
    )
    assert citations(text) == [
        "::test_f",
        "test_e",
        "tests/a/test_b.py::test_c",
        "tests/a/test_d.py",
        "tests/a/test_g.py::test_h_*",
    ]


def test_exists_refuses_a_test_that_is_not_there() -> None:
    assert exists("tests/docs/test_citations.py::test_exists_refuses_a_test_that_is_not_there")
    assert exists("test_exists_refuses_a_test_that_is_not_there")
    assert exists("tests/docs/test_citations.py::test_exists_*")
    assert exists("test_citations")  # a test module cited by name
    assert not exists("tests/docs/test_citations.py::test_nothing_of_the_kind")
    assert not exists("tests/docs/test_gone.py")
    assert not exists("test_nothing_of_the_kind")
    assert not exists("tests/docs/test_citations.py::test_nothing_*")


def test_every_test_the_old_readme_cited_is_still_cited_and_still_exists() -> None:
    frozen = FROZEN.read_text().split()
    assert len(frozen) > 80, "the old README cited more tests than that"
    text = documentation()
    assert [c for c in frozen if c not in text] == [], "cited by the old README, by no page now"
    assert [c for c in frozen if not exists(c)] == [], "cited by the old README, gone from the tests"


def test_every_test_the_documentation_cites_exists() -> None:
    cited = citations(documentation())
    assert len(cited) > 80
    assert [c for c in cited if not exists(c)] == []


if __name__ == "__main__":
    print("\n".join(citations(Path(sys.argv[1]).read_text())))
