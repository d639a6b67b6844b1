"""Temporaries of killed commands: named after their process, removed by the next command once it is gone,
and SIGTERM cleans up as SIGINT does."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO

from bladefl_platform import atomic
from bladefl_platform.atomic import (
    atomic_directory,
    atomic_write_text,
    owned_files,
    remove_stale_temporaries,
    temporary_name,
)

HOST = atomic._HOST


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant(folder: Path, stem: str, host: str, pid: int, as_dir: bool = True) -> Path:
    """A temporary as a killed command of the toolkit leaves it: a folder holding its marker (or a bare file)."""
    path = folder / f".{stem}.{host}-{pid}-0123abcd.tmp"
    if as_dir:
        path.mkdir()
        atomic._mark_temporary(path)
        (path / "partial-ledger.jsonl").write_text("{")
    else:
        path.write_text("partial")
    return path


def test_temporaries_are_named_after_their_host_and_process():
    name = temporary_name("run")
    assert re.fullmatch(rf"\.run\.{re.escape(HOST)}-{os.getpid()}-[0-9a-f]{{8}}\.tmp", name), name
    assert "." not in HOST


def test_the_next_writer_removes_temporaries_of_processes_that_are_gone(tmp_path):
    gone = dead_pid()
    stale_run = plant(tmp_path, "run", HOST, gone)
    stale_other = plant(tmp_path, "K01-seed2", HOST, gone)
    stale_file = plant(tmp_path, "tiny.json", HOST, gone, as_dir=False)  # no marker can prove a file is ours
    live = plant(tmp_path, "run", HOST, os.getpid())
    elsewhere = plant(tmp_path, "run", "another-machine", gone)  # a worker on a shared file system
    foreign = tmp_path / ".run.mine.tmp"
    foreign.mkdir()
    with atomic_directory(tmp_path / "run") as tmp:
        (tmp / "f").write_text("")
    assert not stale_run.exists() and not stale_other.exists()
    assert live.exists() and elsewhere.exists() and foreign.exists() and stale_file.exists()
    assert (tmp_path / "run" / "f").is_file()


def test_remove_stale_temporaries_names_what_it_removed(tmp_path):
    gone = dead_pid()
    a = plant(tmp_path, "K01-seed0", HOST, gone)
    assert remove_stale_temporaries(tmp_path) == [a.name]
    assert remove_stale_temporaries(tmp_path / "absent") == []


def test_atomic_write_text_and_owned_files_clean_up_too(tmp_path):
    gone = dead_pid()
    stale = plant(tmp_path, "p.json", HOST, gone)
    atomic_write_text(tmp_path / "p.json", "{}")
    assert not stale.exists()
    stale = plant(tmp_path, "report", HOST, gone)
    with owned_files(tmp_path, "me") as tmp:
        (tmp / "README.md").write_text("")
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bladefl-owner.json", "README.md", "p.json"]


# ---------------------------------------------------------------------------------------------
# SIGTERM at the CLI boundary.

SIGTERM_SCRIPT = r"""
import sys, time
import click
from bladefl_platform.atomic import atomic_directory
from bladefl_platform.cli import CLIGroup

@click.group(cls=CLIGroup, catch_all=True)
def cli():
    pass

@cli.command()
@click.argument("out")
def work(out):
    with atomic_directory(out) as tmp:
        (tmp / "ledger.jsonl").write_text("{")
        print("ready", flush=True)
        time.sleep(60)

cli.main(sys.argv[1:], prog_name="demo")
"""


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_terminated_command_cleans_up_as_an_interrupted_one(tmp_path, sig, status):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, "work", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()][-1].startswith("demo: error: ")
    assert list(tmp_path.iterdir()) == []


def test_the_sigterm_handler_is_restored_after_the_command():
    from click.testing import CliRunner

    from bladefl_theory.cli import cli

    before = signal.getsignal(signal.SIGTERM)
    CliRunner().invoke(cli, ["formula"])
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_killed_run_leaves_nothing_the_next_run_keeps(tmp_path, data_root):
    """A real `bladefl-validate run` killed with SIGTERM (as `timeout` does) removes its temporary; one killed
    with SIGKILL cannot, and the next run into the same folder removes what it left."""
    out = tmp_path / "runs" / "m1"
    cmd = [sys.executable, "-m", "bladefl_validate.cli", "run", "--N", "3", "--M", "1", "--K", "2", "--t-sum", "24",
           "--samples-per-client", "32", "--hidden", "8", "--difficulty-bits", "22", "--quiet",
           "--data-dir", str(data_root), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "BLADEFL_CACHE": str(tmp_path / "c")}

    def start_and_wait_for_temporary():
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if (tmp_path / "runs").is_dir() and any(p.name.startswith(".m1.") for p in (tmp_path / "runs").iterdir()):
                return proc
            time.sleep(0.1)
        proc.kill()
        pytest.fail(f"no temporary appeared: {proc.communicate()}")

    proc = start_and_wait_for_temporary()
    time.sleep(1.0)  # into the rounds: the ledger is being written
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []

    proc = start_and_wait_for_temporary()
    proc.kill()
    proc.wait(30)
    left = [p.name for p in (tmp_path / "runs").iterdir()]
    assert left and all(atomic._TEMPORARY.match(name) for name in left), left
    # The next writer into runs/ (here a tiny atomic write, as any run would start with) removes it.
    with atomic_directory(tmp_path / "runs" / "m2") as tmp:
        (tmp / "f").write_text("")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["m2"]
