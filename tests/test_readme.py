"""The README's commands run as written, so the docs stay true.

Every `skuforge ...` line of the README's bash blocks runs here in order, in a folder that has the repo's
`examples/`, except the ones that start servers or run the local model over a whole catalog (listed in
LEFT_OUT, each with its reason). JOB and JOB2 stand for the trial and the full run, as in the README.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from skuforge.cli.main import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
LEFT_OUT = {
    "run examples/catalog.xlsx --recipe attributes --model local": "the demo itself: `make demo` runs it",
    "serve": "starts a server: tests/service and tests/browser cover it",
    "worker": "a long-running process: tests/service/test_worker.py covers it",
    "schedule add": "names a catalog path that exists only in a deployment",
    "eval attributes": "minutes of local-model time; tests/eval covers the command with fake:",
    "eval translation": "minutes of local-model time; tests/eval/test_translation.py covers it with fake:",
}


def readme_commands() -> list[str]:
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            for prefix in (".venv/bin/skuforge ", "skuforge "):
                if line.startswith(prefix):
                    commands.append(line.removeprefix(prefix))
    return commands


def readme_recipe() -> str:
    (yaml,) = re.findall(r"```yaml\n(name: short_title.*?)```", README, re.S)
    return yaml


def last_job(capsys: pytest.CaptureFixture[str], kind: str) -> str:
    capsys.readouterr()
    assert main(["jobs", "--json"]) == 0
    jobs = [j for j in json.loads(capsys.readouterr().out) if j["kind"] == kind]
    return str(jobs[0]["id"])


def test_every_readme_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")  # runs write beside the catalog
    (tmp_path / "my_recipe.yaml").write_text(readme_recipe(), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    ids: dict[str, str] = {}
    ran = 0
    for command in readme_commands():
        if any(command.startswith(skip) for skip in LEFT_OUT):
            continue
        argv = [ids.get(arg, arg) for arg in shlex.split(command)]
        code = main(argv)
        printed = capsys.readouterr()
        expected = (1, 5) if argv[:2] == ["safety", "scan"] else (0,)  # 1: flagged, 5: blocked
        assert code in expected, f"`skuforge {command}` exited {code}:\n{printed.out}\n{printed.err}"
        if argv[0] == "trial" and "JOB" not in ids:
            ids["JOB"] = last_job(capsys, "trial")
        if argv[:2] == ["run", "--from-trial"]:
            ids["JOB2"] = last_job(capsys, "run")
        ran += 1
    assert ran >= 15
    assert (tmp_path / "trial.html").exists() and (tmp_path / "final.xlsx").exists()
    assert (tmp_path / "out" / "with-images.xlsx").exists()


def test_the_readme_names_every_command_group() -> None:
    from skuforge.cli.main import COMMANDS

    groups = set(COMMANDS)
    mentioned = {c.split()[0] for c in readme_commands()}
    every = {"run", "trial", "review", "export", "jobs", "show", "resume", "recipes", "images", "kb", "ask"}
    assert every | {"safety", "serve", "worker", "schedule", "eval", "models"} <= groups
    assert {
        "run",
        "trial",
        "review",
        "export",
        "recipes",
        "images",
        "kb",
        "ask",
        "safety",
        "serve",
    } <= mentioned
