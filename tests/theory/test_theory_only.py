"""A theory-only install (sympy, scipy, numpy, click) answers kstar, bound, convexity and formula; what needs an extra
says which one to install, in one line with status 2, and writes nothing."""

import json
import os
import subprocess
import sys

from helpers import REPO

from bladefl_platform.errors import InputError

#: What the theory-only install leaves out: the extras reports, validate and cvxpy.
EXTRAS_ONLY = ("pandas", "matplotlib", "dask", "distributed", "tqdm", "cvxpy", "torch", "torchvision")

HIDE = r"""
import importlib.abc, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
"""


def theory_only(code: str, cwd) -> subprocess.CompletedProcess:
    script = HIDE.replace("HIDDEN", repr(EXTRAS_ONLY)) + code
    return subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300, cwd=cwd)


RUN_ALL = """
import contextlib, io, json
from bladefl_theory.cli import cli
codes = []
for args in ARGS:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args, prog_name="bladefl-theory", standalone_mode=False)
    codes.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(codes))
"""


def commands(*arglists: list[str], cwd) -> list[tuple[int, str, str]]:
    """Exit status, stdout and stderr of each command, all run in one theory-only process."""
    r = theory_only(RUN_ALL.replace("ARGS", repr([list(a) for a in arglists])), cwd)
    assert r.returncode == 0, r.stderr
    return [tuple(x) for x in json.loads(r.stdout)]


def test_the_theory_needs_no_extra(tmp_path):
    results = commands(["kstar", "--M", "4", "--sigma2", "0.1"], ["kstar", "--profile", "default", "--M", "4"],
                       ["bound", "--K", "6,7"], ["convexity", "--grid", "11"], ["formula", "--json"], cwd=tmp_path)
    for code, out, err in results:
        assert code == 0, err
    assert [r[1].count("K*") > 0 for r in results[:2]] == [True, True]
    assert list(tmp_path.iterdir()) == []


def test_a_command_that_needs_an_extra_names_it(tmp_path):
    needs = {"cvxpy": ["kstar", "--profile", "default", "--check"],
             "reports": ["sensitivity", "--vary", "M=0,1", "--out", "sens"]}
    for extra, (code, out, err) in zip(needs, commands(*needs.values(), cwd=tmp_path)):
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (extra, err)
        assert f"install the '{extra}' extra" in lines[0] and f"bladefl[{extra}]" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_solve_kstar_with_cvxpy_missing_says_which_extra(tmp_path):
    code = ("from bladefl_theory import Params\nfrom bladefl_theory.solvers import solve_kstar\n"
            "try:\n    solve_kstar(Params(), method='cvxpy')\n"
            "except ValueError as e:\n    print(type(e).__name__, e)\n")
    r = theory_only(code, tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("InputError cvxpy is not installed"), (r.stdout, r.stderr)
    assert issubclass(InputError, ValueError)
