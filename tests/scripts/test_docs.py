"""The README stays the short entry and the documentation site repeats its Quick start exactly.

`make test` builds the site itself (`mkdocs build --strict`, in the Makefile's `docs`
target), so a broken link or an unreadable docstring fails there, before pytest.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 250  # issue 25: the README is what a newcomer reads; the manual is docs/


def sh_blocks(path):
    return re.findall(r"```sh\n(.*?)```", path.read_text(), re.S)


def quick_start_lines():
    """As tests/scripts/test_readme_quickstart.py reads them: the first sh block under "## Quick start"."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text[text.index("## Quick start\n"):], re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_is_short_and_links_the_manual():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < README_MAX_LINES
    for page in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / page).is_file(), page


def test_site_home_repeats_the_readme_set_up_and_quick_start():
    readme_setup = sh_blocks(ROOT / "README.md")[0]
    site_blocks = sh_blocks(ROOT / "docs" / "index.md")
    assert [line.split("#")[0].strip() for line in site_blocks[0].splitlines()] == \
        [line.split("#")[0].strip() for line in readme_setup.splitlines()]
    assert [line for line in site_blocks[1].splitlines() if line.strip()] == quick_start_lines()


def test_docs_cite_no_path_of_a_machine():
    for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        assert not re.search(r"(?<![\w.])/(home|work|Users|root|mnt|tmp)/", page.read_text()), page
