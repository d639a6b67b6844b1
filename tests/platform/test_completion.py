"""Shell completion of both command lines (click's): the completion source, and completions from it.

Each CLI runs as a real process, the installed console script where there is one (what a shell calls),
else the module's main() under the same program name, with this checkout first on the import path.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

MAINS = {"bladefl-theory": "bladefl_theory.cli", "bladefl-validate": "bladefl_validate.cli"}


def complete(prog: str, **env: str) -> subprocess.CompletedProcess:
    script = shutil.which(prog, path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-c",
                                       f"import sys; from {MAINS[prog]} import main; sys.exit(main())"]
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(command, env={**os.environ, "PYTHONPATH": path, **env}, capture_output=True, text=True,
                          timeout=300, check=False)


def var(prog: str) -> str:
    return f"_{prog.upper().replace('-', '_')}_COMPLETE"


@pytest.mark.parametrize("prog", sorted(MAINS))
@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"), ("zsh", "#compdef"),
                                           ("fish", "complete --no-files --command")])
def test_the_completion_source_is_produced(prog, shell, marker):
    r = complete(prog, **{var(prog): f"{shell}_source"})
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout and prog in r.stdout and var(prog) in r.stdout


@pytest.mark.parametrize("prog, words, expected", [
    ("bladefl-theory", "bladefl-theory ks", "plain,kstar"),
    ("bladefl-theory", "bladefl-theory kstar --t-", "plain,--t-sum"),
    ("bladefl-validate", "bladefl-validate sweep", "plain,sweep-k"),
    ("bladefl-validate", "bladefl-validate run --device c", "plain,cpu\nplain,cuda"),
])
def test_completions_come_from_the_command_line(prog, words, expected):
    cword = len(words.split()) - 1
    r = complete(prog, **{var(prog): "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected
