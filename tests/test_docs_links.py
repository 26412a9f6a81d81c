"""Every relative link in the READMEs and docs/ points at a file that
exists, and the README stays a user's page (at most 250 lines)."""

import re

from tests.conftest import REPO_ROOT

PAGES = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "export" / "README.md",
    *sorted((REPO_ROOT / "docs").glob("**/*.md")),
]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target}")
    assert not broken, broken


def test_readme_is_short():
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, len(lines)
