"""bladefl-validate's commands: output folders they did not write are never replaced, outputs are checked before
anything runs, --seeds is one option that works at its defaults, and bad input is one line with status 2."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, snapshot
from validate_cli_helpers import SMALL, assert_bad_input, fake_tasks, forbid_computation, invoke

import bladefl_validate.cli as cli_module
from bladefl_platform import atomic
from bladefl_platform.atomic import MARKER, read_marker
from bladefl_platform.cli import ListType, SeedsType, parse_seeds
from bladefl_platform.store import ResultStore


def foreign_folder(path: Path, *names: str) -> Path:
    path.mkdir(parents=True)
    for name in names or ("notes.txt",):
        (path / name).write_text("precious")
    return path


# Every command that writes into a folder, with the options that make it cheap and the files of its own.
FOLDER_COMMANDS = {
    "run": ["run", *SMALL, "--K", "2"],
    "partition": ["partition", "--N", "4", "--samples-per-client", "64"],
    "detection-report": ["detection-report", "--datasets", "mnist", "--M", "1", "--sigma2", "0.01", "--quiet"],
    "sweep-k": ["sweep-k", *SMALL],
    "gap": ["gap", *SMALL, "--seeds", "1"],
    "reproduce": ["reproduce", "--datasets", "mnist", "--seeds", "1", "--quiet"],
    "kstar-report": ["kstar-report", "--quiet"],
}


def command(name: str, data_root, out, *extra) -> list[str]:
    return [*FOLDER_COMMANDS[name], *extra, "--data-dir", str(data_root), "--out", str(out)]


# ---------------------------------------------------------------------------------------------
# 1. Folders a command did not write are never replaced; the check comes before anything runs.


@pytest.mark.parametrize("name", FOLDER_COMMANDS)
def test_a_folder_the_command_did_not_write_is_left_alone(tmp_path, data_root, monkeypatch, name):
    forbid_computation(monkeypatch)
    out = foreign_folder(tmp_path / "mine", "README.md", "notes.txt")
    before = snapshot(tmp_path)
    r = invoke(command(name, data_root, out))
    assert_bad_input(r)
    assert "did not write" in r.stderr or "not written by" in r.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", FOLDER_COMMANDS)
def test_a_folder_another_command_wrote_is_left_alone(tmp_path, data_root, monkeypatch, name):
    forbid_computation(monkeypatch)
    out = tmp_path / "theirs"
    with atomic.owned_directory(out, "bladefl-theory sensitivity") as tmp:
        (tmp / "sensitivity.csv").write_text("M,k_star\n")
    before = snapshot(tmp_path)
    r = invoke(command(name, data_root, out))
    assert_bad_input(r, "bladefl-theory sensitivity")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", FOLDER_COMMANDS)
def test_help_names_the_files_each_command_owns(name):
    # Rewrapped as one line; click breaks long words at hyphens (.bladefl-|owner.json).
    text = re.sub(r"\s+", " ", re.sub(r"-\n\s+", "-", invoke([name, "--help"]).output))
    assert MARKER in text
    files = {"run": ["ledger.jsonl", "chain.json", "blobs/"], "partition": ["partition.csv", "partition.png"],
             "detection-report": ["cells.csv", "detection.png"], "sweep-k": ["per_k.csv", "loss.png", "results.sqlite"],
             "gap": ["gap.csv", "gap.png", "results.sqlite"], "reproduce": ["fig2.png", "kstar.csv", "results.sqlite"],
             "kstar-report": ["held_out.csv", "curves.png", "results.sqlite"]}
    for f in files[name]:
        assert f in text, (name, f)


def test_partition_writes_its_marker_and_replaces_only_its_own_folder(tmp_path, data_root):
    out = tmp_path / "part"
    assert invoke(command("partition", data_root, out)).exit_code == 0
    assert read_marker(out) == {"owner": "bladefl-validate partition", "files": ["partition.csv", "partition.png"]}
    assert invoke(command("partition", data_root, out, "--seed", "3")).exit_code == 0
    (out / "mine.txt").write_text("x")
    r = invoke(command("partition", data_root, out))
    assert_bad_input(r, "mine.txt")
    assert (out / "mine.txt").read_text() == "x"


@pytest.mark.parametrize("name", FOLDER_COMMANDS)
@pytest.mark.parametrize("spelling", ["nothere/../mine", "link/../../mine"])
def test_a_folder_reached_through_dot_dot_is_left_alone(tmp_path, data_root, monkeypatch, name, spelling):
    # link -> sub/deeper, so link/../.. is tmp_path as the file system resolves it (lexically it would be its parent).
    forbid_computation(monkeypatch)
    foreign_folder(tmp_path / "mine", "README.md", "thesis.tex")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "sub" / "deeper", target_is_directory=True)
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    r = invoke(command(name, data_root, spelling))
    assert_bad_input(r)
    assert snapshot(tmp_path) == before


def test_partition_json_gives_the_counts_it_wrote(tmp_path, data_root):
    out = tmp_path / "part"
    r = invoke(command("partition", data_root, out, "--json"))
    assert r.exit_code == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["status"] == 0 and obj["out"] == str(out) and obj["files"] == ["partition.csv", "partition.png"]
    csv = [[int(x) for x in line.split(",")[1:]] for line in (out / "partition.csv").read_text().splitlines()[1:]]
    assert obj["counts"] == csv and len(csv) == 4 and all(sum(row) == 64 for row in csv)
    assert obj["config"]["N"] == 4


def test_run_marks_its_folder_and_a_second_run_replaces_it(tmp_path, data_root):
    out = tmp_path / "run"
    assert invoke(command("run", data_root, out)).exit_code == 0
    marker = read_marker(out)
    assert marker["owner"] == "bladefl-validate run"
    assert {"config.json", "ledger.jsonl", "chain.json", "blobs", "metrics.csv"} <= set(marker["files"])
    r = invoke(command("run", data_root, out, "--seed", "1"))
    assert r.exit_code == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert invoke(["chain", "verify", str(out)]).exit_code == 0


def test_detection_report_keeps_its_store_out_of_the_folder_it_replaces(tmp_path, data_root, monkeypatch):
    forbid_computation(monkeypatch)
    out = tmp_path / "det"
    r = invoke(command("detection-report", data_root, out, "--store", str(out / "results.sqlite")))
    assert_bad_input(r, "inside --out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["sweep-k", "gap", "reproduce", "kstar-report"])
def test_the_store_may_not_be_a_report_file(tmp_path, data_root, monkeypatch, name):
    forbid_computation(monkeypatch)
    out = tmp_path / "out"
    r = invoke(command(name, data_root, out, "--store", str(out / "README.md")))
    assert_bad_input(r, "one of the report files")
    assert list(tmp_path.iterdir()) == []


def test_the_committed_reports_can_be_regenerated_by_their_commands():
    """reports/paper-reproduction, reports/lazy-detection and reports/kstar-prediction carry the marker of the study
    that wrote them, which may write them again."""
    from bladefl_platform.study import _check_output
    from bladefl_validate.config import RunConfig
    from bladefl_validate.studies.detection import DETECTION_FILES, DetectionStudy
    from bladefl_validate.studies.kstar.study import KStarReportStudy
    from bladefl_validate.studies.reproduce import ReproduceStudy

    repro = REPO / "reports" / "paper-reproduction"
    study = ReproduceStudy(RunConfig(), [0], ["mnist", "fashion-mnist"])
    files = study.outputs(repro)
    assert read_marker(repro) == {"owner": study.owner, "files": sorted(files)}
    assert sorted(p.name for p in repro.iterdir()) == sorted([*files, MARKER, "results.sqlite"])
    _check_output(study, repro, repro / "results.sqlite")
    assert "--out reports/paper-reproduction" in (repro / "README.md").read_text()

    detection = REPO / "reports" / "lazy-detection"
    study = DetectionStudy(["mnist"], [2], [0.01], [0])
    assert read_marker(detection) == {"owner": study.owner, "files": sorted(DETECTION_FILES)}
    _check_output(study, detection, None)
    assert "--out reports/lazy-detection" in (detection / "README.md").read_text()

    kstar = REPO / "reports" / "kstar-prediction"
    study = KStarReportStudy(measured_only=True)
    assert read_marker(kstar) == {"owner": study.owner, "files": sorted(study.outputs(kstar))}
    _check_output(study, kstar, kstar / "results.sqlite")


def test_kstar_report_measured_only_needs_an_existing_store(tmp_path, monkeypatch):
    forbid_computation(monkeypatch)
    r = invoke(["kstar-report", "--measured-only", "--out", str(tmp_path / "out")])
    assert_bad_input(r, "does not exist")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 4. Outputs that cannot be written: one line, status 2, before anything is computed.

WRITERS = [*FOLDER_COMMANDS, "estimate"]


def writer(name: str, data_root, out) -> list[str]:
    if name == "estimate":
        return ["estimate", *SMALL, "--K", "2", "--seeds", "1", "--data-dir", str(data_root), "--out", str(out)]
    return command(name, data_root, out)


@pytest.mark.parametrize("name", WRITERS)
@pytest.mark.parametrize("where", ["under-a-file", "proc", "sys"])
def test_an_unwritable_output_is_refused_before_anything_runs(tmp_path, data_root, monkeypatch, name, where):
    forbid_computation(monkeypatch)
    leaf = "p.json" if name == "estimate" else "out"
    if where == "under-a-file":
        (tmp_path / "a-file").write_text("")
        out = tmp_path / "a-file" / leaf
    else:
        if not Path(f"/{where}").is_dir():
            pytest.skip(f"no /{where} here")
        out = Path(f"/{where}/bladefl-test-{os.getpid()}/{leaf}")
    before = snapshot(tmp_path)
    assert_bad_input(invoke(writer(name, data_root, out)), "cannot")
    assert snapshot(tmp_path) == before
    assert not out.parent.exists() or where == "under-a-file"


def test_a_read_only_file_system_is_refused(tmp_path, data_root, monkeypatch):
    # Simulated: os.access says yes (as to root); creating anything says EROFS.
    forbid_computation(monkeypatch)
    real_mkdir = os.mkdir
    ro = tmp_path / "ro"
    ro.mkdir()

    def refuse_mkdir(path, *a, **k):
        if ro in Path(path).parents:
            raise OSError(30, "Read-only file system")
        return real_mkdir(path, *a, **k)

    monkeypatch.setattr(atomic.os, "mkdir", refuse_mkdir)
    for name in WRITERS:
        out = ro / ("p.json" if name == "estimate" else "out")
        assert_bad_input(invoke(writer(name, data_root, out)), "Read-only file system")
    assert list(ro.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 3. Stores and schedulers.


@pytest.mark.parametrize("name", ["sweep-k", "gap", "reproduce", "detection-report", "estimate"])
def test_a_store_that_is_not_sqlite_is_refused_before_anything_runs(tmp_path, data_root, monkeypatch, name):
    forbid_computation(monkeypatch)
    store = tmp_path / "store.sqlite"
    store.write_text("not a database, just notes " * 50)
    out = tmp_path / ("p.json" if name == "estimate" else "out")
    r = invoke([*writer(name, data_root, out), "--store", str(store)])
    assert_bad_input(r, "not a result store")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.sqlite"]
    assert store.read_text().startswith("not a database")


def test_a_store_that_cannot_be_opened(tmp_path, data_root, monkeypatch):
    forbid_computation(monkeypatch)
    (tmp_path / "folder.sqlite").mkdir()
    r = invoke(command("sweep-k", data_root, tmp_path / "out", "--store", str(tmp_path / "folder.sqlite")))
    assert "folder.sqlite" in r.stderr
    assert_bad_input(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.sqlite"]


def test_an_unreachable_scheduler_is_refused_at_once(tmp_path, data_root, monkeypatch):
    # "At once": refused by one connection attempt with the short timeout, before any computation or Dask's Client.
    import socket

    import distributed

    from bladefl_platform.execution import CONNECT_TIMEOUT

    forbid_computation(monkeypatch)
    monkeypatch.setattr(distributed, "Client", lambda *a, **k: pytest.fail("Dask's Client tried to connect"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    timeouts = []
    connect = socket.create_connection

    def spy(address, timeout=None, *args, **kwargs):
        if address == ("127.0.0.1", port):
            timeouts.append(timeout)
        return connect(address, timeout, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    r = invoke(command("sweep-k", data_root, tmp_path / "out", "--scheduler", f"tcp://127.0.0.1:{port}"))
    assert_bad_input(r, "cannot reach the Dask scheduler")
    assert timeouts == [CONNECT_TIMEOUT]
    assert list(tmp_path.iterdir()) == []


def test_the_rules_of_a_run_reach_every_command(tmp_path, data_root, monkeypatch):
    forbid_computation(monkeypatch)
    cases = [
        (["run", *SMALL, "--K", "2", "--classes-per-client", "3"], "must divide samples_per_client"),
        (["run", "--classes-per-client", "3"], "(k=3) must divide samples_per_client (512)"),
        (["partition", "--classes-per-client", "3"], "must divide samples_per_client (512)"),
        (["sweep-k", *SMALL, "--classes-per-client", "3"], "must divide samples_per_client"),
        (["run", *SMALL, "--K", "2", "--partition", "dirichlet", "--dirichlet-alpha", "inf"], "dirichlet_alpha"),
        (["partition", "--partition", "dirichlet", "--dirichlet-alpha", "inf"], "dirichlet_alpha"),
        (["run", *SMALL, "--K", "2", "--seed", "18446744073709551616"], "0..2**64-1"),
        (["partition", "--seed", "18446744073709551616"], "0..2**64-1"),
        (["sweep-k", *SMALL, "--seeds", "0,18446744073709551616"], "0..2**64-1"),
        (["run", *SMALL, "--K", "2", "--M", "1", "--sigma2", "1e300"], "sigma2 must be at most 1e+60"),
        (["detection-report", "--sigma2", "1e300"], "sigma2 must be at most 1e+60"),
        (["run", "--hidden", "3000000"], "needs at least"),
        (["sweep-k", *SMALL, "--hidden", "3000000"], "needs at least"),  # the last --hidden counts
        (["sweep-k", *SMALL, "--t-sum", "2e6"], "runs, more than"),
        (["sweep-k", *SMALL, "--t-sum", "1e300"], "MAX_CLIENT_EPOCHS"),
        (["run", *SMALL, "--K", "2", "--partition", "shards", "--samples-per-client", "63"], "divisible by 2"),
    ]
    for args, fragment in cases:
        r = invoke([*args, "--data-dir", str(data_root), "--out", str(tmp_path / "out")])
        assert_bad_input(r, fragment)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 2. --seeds.


def test_sweep_k_works_at_its_default_seeds(tmp_path, data_root, monkeypatch):
    from bladefl_validate.studies.sweep_k import SWEEP_FILES

    calls = []
    fake_tasks(monkeypatch, calls)
    out = tmp_path / "out"
    r = invoke(command("sweep-k", data_root, out))
    assert r.exit_code == 0, r.stderr
    assert [(c["kind"], [(k["K"], k["seed"]) for k in c["configs"]]) for c in calls] == [
        ("bladefl-run", [(1, 0), (2, 0)])]
    assert calls[0]["context"]["runs_dir"] is None and calls[0]["store"] is not None
    assert calls[0]["context"]["data_dir"] == str(data_root.resolve())
    assert read_marker(out) == {"owner": "bladefl-validate sweep-k", "files": sorted(SWEEP_FILES)}
    assert sorted(p.name for p in out.iterdir()) == sorted([*SWEEP_FILES, MARKER, "results.sqlite"])
    assert "--seeds 1" in (out / "README.md").read_text()


@pytest.mark.parametrize("text, seeds", [("1", [0]), ("3", [0, 1, 2]), ("0,", [0]), ("5,0,7", [5, 0, 7]),
                                         (" 2 ", [0, 1]), ("1,,2", [1, 2]), ("18446744073709551615,", [2**64 - 1])])
def test_seeds_that_are_understood(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", ",", " , ", "0", "-1", "1001", "99999999999999999999", "1,1", "a", "1.5",
                                  "0,-1", "0,18446744073709551616", "9" * 5000, ",".join(map(str, range(1001)))])
@pytest.mark.parametrize("name", ["sweep-k", "gap", "reproduce", "detection-report", "estimate"])
def test_seeds_that_are_refused_in_one_line(tmp_path, data_root, monkeypatch, text, name):
    forbid_computation(monkeypatch)
    out = tmp_path / ("p.json" if name == "estimate" else "out")
    r = invoke([*writer(name, data_root, out), "--seeds", text])
    assert_bad_input(r, "--seeds")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, kind, where", [
    ("--seeds", SeedsType, "bladefl_platform.cli"), ("--datasets", ListType, "bladefl_validate.cli"),
    *((name, None, "bladefl_platform.cli") for name in ("--store", "--scheduler", "--workers", "--data-dir", "--quiet",
                                                        "--json")),
])
def test_the_shared_options_are_declared_once(option, kind, where):
    import bladefl_platform.cli as platform_cli
    import bladefl_theory.cli as theory_cli

    declared = rf"click\.option\(\s*\"{option}\""
    modules = (cli_module, theory_cli, platform_cli)
    sources = {m.__name__: len(re.findall(declared, inspect.getsource(m))) for m in modules}
    assert sources == {**dict.fromkeys(sources, 0), where: 1}
    users = [p for group in (cli_module.cli, theory_cli.cli) for cmd in group.commands.values()
             for p in getattr(cmd, "params", []) if option in getattr(p, "opts", [])]
    assert len(users) >= 2 and all(kind is None or isinstance(p.type, kind) for p in users)


# ---------------------------------------------------------------------------------------------
# 6. Stale temporaries of a killed sweep, and what a failed sweep leaves.


def test_a_sweep_removes_the_run_folders_a_killed_sweep_left(tmp_path, data_root, monkeypatch):
    calls = []
    fake_tasks(monkeypatch, calls)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    runs = tmp_path / "out" / "runs"
    runs.mkdir(parents=True)
    stale = runs / f".K01-seed2.{atomic._HOST}-{proc.pid}-0123abcd.tmp"
    stale.mkdir()
    atomic._mark_temporary(stale)  # as a killed worker's run leaves it
    (stale / "ledger.jsonl").write_text('{"index": 1')
    unproven = runs / f".K03-seed2.{atomic._HOST}-{proc.pid}-0123abcd.tmp"  # no marker: not the toolkit's
    unproven.mkdir()
    live = runs / f".K02-seed2.{atomic._HOST}-{os.getpid()}-0123abcd.tmp"
    live.mkdir()
    r = invoke(command("sweep-k", data_root, tmp_path / "out", "--keep-runs"))
    assert r.exit_code == 0, r.stderr
    assert not stale.exists() and live.exists() and unproven.exists()
    assert calls[0]["context"]["runs_dir"] == str(runs.resolve())


@pytest.mark.parametrize("keep_runs", [[], ["--keep-runs"]])
def test_a_sweep_that_fails_before_any_result_leaves_nothing(tmp_path, data_root, monkeypatch, keep_runs):
    from bladefl_validate.partition import PartitionError

    fake_tasks(monkeypatch, fail=PartitionError("dirichlet(alpha=0.01): client 3 needs 64 samples, and none of 100 "
                                                "draws fit"))
    r = invoke(command("sweep-k", data_root, tmp_path / "a" / "out", *keep_runs))
    assert_bad_input(r, "dirichlet")
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_that_fails_after_results_keeps_its_store(tmp_path, data_root, monkeypatch):
    import bladefl_platform.study as study
    from bladefl_platform.store import task_key

    def killed(kind, configs, store=None, context=None, execution=None, desc=""):
        store.put(task_key("bladefl-run", {"K": 1}, "2"), "bladefl-run", {"K": 1}, {"final_global_train_loss": 1}, "2")
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "run_tasks", killed)
    out = tmp_path / "out"
    r = invoke(command("sweep-k", data_root, out))
    assert r.exit_code == 130
    assert sorted(p.name for p in out.iterdir()) == ["results.sqlite"]
    with ResultStore(out / "results.sqlite") as store:
        assert store.count() == 1


# ---------------------------------------------------------------------------------------------
# 5. Without torch: --help and --version work, a command says which extra to install.

HIDE_TORCH = r"""
import importlib.abc, sys

class HideTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideTorch())
sys.argv = ["bladefl-validate", *sys.argv[1:]]
from bladefl_validate.cli import main
main()
"""


def without_torch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", HIDE_TORCH, *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_help_and_version_need_no_torch(tmp_path):
    r = without_torch("--help")
    assert r.returncode == 0, r.stderr
    for name in ("run", "sweep-k", "chain", "partition", "estimate", "gap", "reproduce", "detection-report"):
        assert name in r.stdout
    r = without_torch("--version")
    assert r.returncode == 0 and "bladefl-validate" in r.stdout, r.stderr
    r = without_torch("sweep-k", "--help")
    assert r.returncode == 0 and "--seeds" in r.stdout, r.stderr


def test_a_command_without_torch_says_which_extra_to_install(tmp_path):
    r = without_torch("run", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert 'pip install -e ".[validate]"' in lines[0] and "torch" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_importing_the_command_line_imports_no_torch():
    code = "import sys, bladefl_validate.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout, r.stderr)


@pytest.mark.parametrize("pilots, fragment", [
    (["t_sum=50"], "is a held-out setting of the K* prediction study"),  # the t_sum arm's near end
    (["M=0", "M=0"], "must differ"),
    (["M=1", "M=2", "M=3", "M=5", "M=7"], "1 to 4 pilot settings"),
])
def test_calibrate_refuses_held_out_or_too_many_pilots_before_anything_runs(tmp_path, monkeypatch, pilots, fragment):
    forbid_computation(monkeypatch)
    args = [a for p in pilots for a in ("--pilot", p)]
    r = invoke(["calibrate", "--dataset", "mnist", *args, "--store", str(tmp_path / "s.sqlite"),
                "--out", str(tmp_path / "p.json")])
    assert_bad_input(r, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(cli_module.cli.commands))
def test_help_text_is_wrapped_as_prose(name):
    # A command's description carries no run of spaces from its docstring's indentation (the owned-files listing
    # appended to it once left every continuation line indented).
    r = invoke([name, "--help"])
    assert r.exit_code == 0
    description = r.stdout.split("Options:")[0]
    assert not re.search(r"\S {2,}\S", description), description
