"""The docs a newcomer reads (README.md and docs/) stay true to the code they describe.

- docs/cli.md's help blocks are exactly what `spotctl ... --help` prints (in a terminal of 80
  columns or more: click wraps help at 78), and
  every command has one: the reference is generated output, so it must not drift.
- Every relative link of README.md and docs/*.md reaches a file of the repository, and its
  `#anchor`, when it has one, a heading of that file (GitHub's anchor rule); no link names a
  machine path.
- docs/configuration.md names every SPOTCTL_* variable the code reads.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from spotctl.cli.main import cli

from conftest import REPO

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
HELP_BLOCK = re.compile(r"^## `(spotctl[^`]*)`\n\n```text\n(.*?)\n```\n", re.M | re.S)
HELP_WIDTH = 78
"""What click wraps help at in any terminal of 80 columns or more (its max_content_width - 2)."""
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def commands(group: click.Command = cli, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the CLI, the root first (hidden commands left out)."""
    found = [path]
    if isinstance(group, click.Group):
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                found += commands(sub, (*path, name))
    return found


def test_cli_reference_is_the_help_output() -> None:
    text = (REPO / "docs" / "cli.md").read_text()
    blocks = {name: block for name, block in HELP_BLOCK.findall(text)}
    expected = {" ".join(("spotctl", *path)): path for path in commands()}
    assert sorted(blocks) == sorted(expected), "docs/cli.md: a command without a help block, or a block of none"
    for name, path in expected.items():
        result = CliRunner().invoke(cli, [*path, "--help"], prog_name="spotctl", terminal_width=HELP_WIDTH)
        assert result.exit_code == 0, result.output
        assert blocks[name] == result.output.rstrip(), f"docs/cli.md: `{name} --help` changed; paste its output"


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes of a file's headings: lower case, punctuation dropped, spaces to -."""
    found = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"^#{1,6} (.*)$", line)):
            found.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_reach_their_target(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto: ...
        assert not target.startswith("/"), f"{page.name}: {target}: links are relative to the page"
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        assert linked.exists(), f"{page.name}: {target}: no such file"
        assert REPO in linked.parents or linked == REPO, f"{page.name}: {target}: outside the repository"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked.read_text()), f"{page.name}: {target}: no such heading"


def test_configuration_names_every_variable() -> None:
    code = "\n".join(p.read_text() for p in (REPO / "spotctl").rglob("*.py"))
    names = set(re.findall(r"\bSPOTCTL_[A-Z0-9_]+[A-Z0-9]\b", code))
    doc = (REPO / "docs" / "configuration.md").read_text()
    missing = sorted(n for n in names if not re.search(rf"`{n}\b", doc))
    assert not missing, f"docs/configuration.md does not name {missing}"
