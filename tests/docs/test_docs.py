"""The README and docs/ as a user reads them: every Python snippet runs as written (in order,
per page, in an empty directory), and every `gcsampler` command line parses and, where it
describes a run, sweep or study, gives valid settings."""

import pathlib
import re
import shlex

import pytest

from gcsampler import cli
from gcsampler.cli import classify_commands, commands

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(page):
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def command_lines(page):
    """The `gcsampler ...` command lines of a page's code blocks (continuations joined,
    comments and a leading `pip install ... &&` dropped)."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip().removeprefix("$ ")
            line = line.rpartition("&& ")[2] if "&&" in line else line
            if line.startswith("gcsampler ") and "$" not in line:
                lines.append(line.rstrip(" &"))
    return lines


def _ids(pages):
    return [page.name for page in pages]


SNIPPET_PAGES = [page for page in PAGES if python_blocks(page)]
COMMANDS = [(page.name, line) for page in PAGES for line in command_lines(page)]


def test_the_pages_have_snippets_and_commands():
    assert {"README.md", "python-api.md", "splitting.md"} <= {p.name for p in SNIPPET_PAGES}
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("page", SNIPPET_PAGES, ids=_ids(SNIPPET_PAGES))
def test_python_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for number, block in enumerate(python_blocks(page)):
        exec(compile(block, f"{page.name}, snippet {number + 1}", "exec"), namespace)


@pytest.mark.parametrize("page, line", COMMANDS, ids=[f"{p}: {line}" for p, line in COMMANDS])
def test_command_lines_parse(page, line):
    args = cli.build_parser().parse_args(shlex.split(line)[1:])
    values = args.flag_values
    if args.command == "run" and values.resume is None:
        commands.run_config(values)
    elif args.command == "sweep" and not values.list_presets and values.resume is None:
        commands.sweep_spec(values)
    elif args.command == "classify" and not values.list_presets and values.resume is None:
        classify_commands.classify_config(values)
