"""The docs cannot rot: their Python runs, their commands exist, their links resolve, their numbers are generated.

Each docs/*.md runs as one script: its ```python blocks in order (so a later block may use an earlier block's
names, as a reader would), in a fresh process whose working folder is a temporary one. A block whose first line
is `# not run` is skipped. Line numbers in a failure's traceback are those of the Markdown file.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"
DOCS = sorted(DOCS_DIR.glob("*.md"))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TIMEOUT_S = 240


def code_blocks(text: str, language: str) -> list[tuple[int, str]]:
    """(1-based line of the block's first code line, code) for every fenced block in `language`."""
    blocks = []
    for m in FENCE.finditer(text):
        if m.group(1) == language:
            first_line = text.count("\n", 0, m.start(2)) + 1
            blocks.append((first_line, m.group(2)))
    return blocks


def runnable_script(text: str) -> str:
    """The doc's runnable Python blocks, each at its own line number (everything else blank)."""
    lines = [""] * (text.count("\n") + 1)
    for first, code in code_blocks(text, "python"):
        if code.lstrip().startswith("# not run"):
            continue
        for i, line in enumerate(code.splitlines()):
            lines[first - 1 + i] = line
    return "\n".join(lines) + "\n"


def test_block_extraction_keeps_line_numbers() -> None:
    text = "# t\n\n```python\nx = 1\n```\n\ntext\n```python\n# not run\nboom()\n```\n```bash\nls\n```\n"
    script = runnable_script(text).splitlines()
    assert script[3] == "x = 1" and "boom()" not in script
    assert code_blocks(text, "bash") == [(13, "ls\n")]


def test_docs_exist() -> None:
    names = {p.name for p in DOCS}
    expected = {"quickstart.md", "machine_model.md", "kernels.md", "compiler.md", "serving_and_cost.md", "extending.md"}
    assert expected <= names


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_python_blocks_run(doc: Path, tmp_path: Path) -> None:
    script = runnable_script(doc.read_text())
    if not script.strip():
        pytest.skip(f"{doc.name} has no runnable Python")
    path = tmp_path / f"{doc.name}.py"
    path.write_text(script)
    env = dict(os.environ, TRNSIM_CACHE_DIR=str(tmp_path / "cache"), MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0, (
        f"a Python block of docs/{doc.name} failed (traceback line numbers are the .md's):\n{proc.stderr[-4000:]}"
    )


def _cli_options() -> dict[tuple[str, ...], set[str]]:
    """('kernel',) -> {'--arg', '--target', ...}, ('hw', 'show') -> {...}: every command the CLI has right now."""
    import typer

    from trnsim.cli import app

    root = typer.main.get_command(app)
    found: dict[tuple[str, ...], set[str]] = {}

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        if hasattr(cmd, "commands"):  # a group (typer ships its own click, so no isinstance on click's classes)
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
            return
        opts = {"--help", "--debug"}  # --debug is handled by trnsim.cli.main for every command
        for param in cmd.params:
            opts.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
        found[path] = opts

    walk(root, ())
    return found


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_shell_blocks_use_existing_commands_and_options(doc: Path) -> None:
    commands = _cli_options()
    groups = {c[0] for c in commands if len(c) == 2}
    bad = []
    for first, code in code_blocks(doc.read_text(), "bash"):
        for offset, line in enumerate(code.splitlines()):
            words = shlex.split(line, comments=True)
            if len(words) < 2 or words[0] != "trnsim" or words[1].startswith("-"):
                continue
            cmd = tuple(words[1:3]) if words[1] in groups else (words[1],)
            where = f"line {first + offset}: trnsim {' '.join(cmd)}"
            if cmd not in commands:
                bad.append(f"{where} (no such command)")
                continue
            unknown = [w for w in words if w.startswith("--") and w.split("=")[0] not in commands[cmd]]
            if unknown:
                bad.append(f"{where} (no option {', '.join(unknown)})")
            # Repository files the command reads (`src/...py:kernel`, `examples/...`) must exist.
            for word in words[2:]:
                path = word.split(":")[0]
                if path.startswith(("src/", "examples/")) and not (DOCS_DIR.parent / path).exists():
                    bad.append(f"{where} (no file {path})")
    assert not bad, f"docs/{doc.name} shows commands the CLI does not have: {bad}"


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_relative_links_resolve(doc: Path) -> None:
    root = DOCS_DIR.parent
    missing = []
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        path = (doc.parent / target).resolve()
        if not path.exists() and not (root / target).exists():
            missing.append(target)
    assert not missing, f"docs/{doc.name} links to files that do not exist: {missing}"


@pytest.mark.parametrize("doc", [*DOCS, DOCS_DIR.parent / "README.md"], ids=[*(p.name for p in DOCS), "README.md"])
def test_docs_stay_inside_the_repository(doc: Path) -> None:
    """A reader of the repository alone can follow every reference: nothing points at ../ or the workspace's
    shared/ notes, and every relative link lands inside the repository."""
    root = DOCS_DIR.parent.resolve()
    text = doc.read_text()
    assert not re.search(r"(?:\.\./|`)shared/", text), f"{doc.name} refers to shared/ outside the repository"
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target and not target.startswith("mailto:"):
            assert (doc.parent / target).resolve().is_relative_to(root), f"{doc.name} links outside: {target}"


def test_machine_model_table_is_generated() -> None:
    from trnsim.hw.table import BEGIN, END, markdown_table

    text = (DOCS_DIR / "machine_model.md").read_text()
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    assert text[start:stop].strip() == markdown_table().strip(), (
        "docs/machine_model.md's preset table differs from the presets: run "
        "`python -m trnsim.hw.table --update docs/machine_model.md`"
    )


def test_quickstart_lists_every_example() -> None:
    text = (DOCS_DIR / "quickstart.md").read_text()
    unlisted = [p.name for p in sorted((DOCS_DIR.parent / "examples").glob("*.py")) if f"`{p.name}`" not in text]
    assert not unlisted, f"docs/quickstart.md's examples table lacks {unlisted}"


def test_table_update_replaces_only_the_marked_part() -> None:
    from trnsim.errors import SpecError
    from trnsim.hw.table import BEGIN, END, replace_between_markers

    text = f"intro\n{BEGIN}\nstale | table\n{END}\noutro\n"
    assert replace_between_markers(text, "| new |\n") == f"intro\n{BEGIN}\n| new |\n{END}\noutro\n"
    with pytest.raises(SpecError, match="markers"):
        replace_between_markers("no markers here", "| new |\n", "x.md")
