"""`skuforge --help` lists every command from one table, without importing the command modules."""

from __future__ import annotations

import subprocess
import sys

from skuforge.cli.main import COMMANDS, load_commands


def test_the_command_table_matches_what_the_modules_register() -> None:
    registered: dict[str, str] = {}
    for module in sorted({module for module, _ in COMMANDS.values()}):
        for name in load_commands(module):
            registered[name] = module
    assert registered == {name: module for name, (module, _) in COMMANDS.items()}


def test_help_lists_every_command_and_imports_none_of_them() -> None:
    probe = (
        "import sys; from skuforge.cli.main import main; code = main(['--help']); "
        "loaded = sorted(m for m in sys.modules if m.startswith('skuforge.cli.') and m != 'skuforge.cli.main'"
        " or m in ('sqlalchemy', 'pydantic', 'jinja2', 'aiohttp')); print('LOADED', loaded); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
    for name in COMMANDS:
        assert name in done.stdout


def test_a_command_still_runs_through_the_lazy_group() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "skuforge.cli.main", "recipes", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "attributes" in done.stdout
