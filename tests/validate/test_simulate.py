"""End-to-end runs of the simulator on small IDX files the tests write themselves."""

import csv
import json
import os

import pytest
from click.testing import CliRunner
from helpers import cli_args, small_config

from bladefl_platform.errors import InputError
from bladefl_theory.params import ParameterError
from bladefl_validate.cli import cli
from bladefl_validate.config import RunConfig
from bladefl_validate.simulation import METRIC_COLUMNS, run_to_folder
from bladefl_platform.execution import Execution
from bladefl_validate.studies.sweep_k import sweep_k
from bladefl_validate.chain.verify import verify_run

# data_root and private_cache come from conftest.py.
pytestmark = pytest.mark.usefixtures("private_cache")


def read_metrics(folder):
    with open(folder / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_folder_holds_everything(tmp_path, data_root):
    out = tmp_path / "run"
    result = run_to_folder(small_config(), out, data_root)
    for name in ("config.json", "metrics.csv", "summary.json", "summary.md", "ledger.jsonl", "partition.csv",
                 "partition.png"):
        assert (out / name).is_file(), name
    rows = read_metrics(out)
    assert [int(r["round"]) for r in rows] == [1, 2]
    assert set(METRIC_COLUMNS) <= set(rows[0])
    assert [float(r["virtual_time"]) for r in rows] == [12.0, 24.0]  # tau*alpha + beta per round
    assert all(int(r["votes"]) == 4 for r in rows)
    assert json.loads((out / "config.json").read_text())["tau"] == 2
    assert len(result.lazy) == 1
    report = verify_run(out, difficulty_bits=8)
    assert report.ok and report.blocks == 2


def test_same_seed_same_results(tmp_path, data_root):
    a = run_to_folder(small_config(seed=3), tmp_path / "a", data_root)
    b = run_to_folder(small_config(seed=3), tmp_path / "b", data_root)
    strip = lambda r: {k: v for k, v in r.__dict__.items() if k != "wall_seconds"}  # noqa: E731
    assert [strip(r) for r in a.rounds] == [strip(r) for r in b.rounds]
    assert (tmp_path / "a" / "ledger.jsonl").read_bytes() == (tmp_path / "b" / "ledger.jsonl").read_bytes()
    c = run_to_folder(small_config(seed=4), tmp_path / "c", data_root)
    assert [r.block_hash for r in c.rounds] != [r.block_hash for r in a.rounds]


def test_lazy_clients_lower_nothing_but_change_the_models(tmp_path, data_root):
    honest = run_to_folder(small_config(M=0, sigma2=0.0), tmp_path / "h", data_root)
    noisy = run_to_folder(small_config(M=3, sigma2=1.0), tmp_path / "n", data_root)
    assert noisy.final.global_train_loss > honest.final.global_train_loss


def test_a_block_that_fails_its_own_check_is_a_bug_not_a_rejection(tmp_path, data_root, monkeypatch):
    # Every client verifies the same download, so a block can fail only if mining is broken: here a
    # miner that hashes the wrong Merkle root. The run stops at an assertion and leaves nothing behind.
    import bladefl_validate.simulation as simulation

    real_mine = simulation.mine
    monkeypatch.setattr(simulation, "mine", lambda index, prev, root, *a: real_mine(index, prev, "0" * 64, *a))
    with pytest.raises(AssertionError, match="round 1: .* merkle_root"):
        run_to_folder(small_config(), tmp_path / "run", data_root)
    assert list(tmp_path.iterdir()) == []


def test_failed_run_leaves_no_folder(tmp_path, data_root):
    out = tmp_path / "run"

    def explode(_):
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        run_to_folder(small_config(), out, data_root, on_round=explode)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "changes, error, fragment",
    [
        ({"M": 4}, ParameterError, "0 <= M <= N-1"),
        ({"K": 3}, ParameterError, "K must be an integer in 1..K_max = 2"),
        ({"dataset": "cifar"}, InputError, "dataset must be one of"),
        ({"partition": "x"}, InputError, "partition must be one of"),
        ({"difficulty_bits": 65}, InputError, "difficulty_bits"),
    ],
)
def test_config_rejects_bad_input(changes, error, fragment):
    with pytest.raises(error, match=fragment):
        small_config(**changes)


def test_sweep_k_reports_every_k(data_root):
    execution = Execution(workers=2, progress=False)
    result = sweep_k(small_config(K=1), seeds=[0, 1], data_dir=data_root, execution=execution)
    assert list(result.per_k.index) == [1, 2]
    assert len(result.runs) == 4
    # The empirical K* is the argmin of the mean final loss over the seeds, whatever it is.
    means = result.runs.groupby("K").final_global_train_loss.mean()
    assert result.k_star == int(means.idxmin())
    assert result.per_k.loc[result.k_star, "final_global_train_loss_mean"] == pytest.approx(means.min())
    assert result.per_k["final_global_train_loss_std"].notna().all()


def test_cli_run_and_chain_verify(tmp_path, data_root):
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["run", *cli_args(data_root, "--out", str(out))])
    assert r.exit_code == 0, r.output
    ok = CliRunner().invoke(cli, ["chain", "verify", str(out)])
    assert ok.exit_code == 0 and "ok, 2 blocks" in ok.output
    blob = next(p for p in (out / "blobs").rglob("*") if p.is_file())
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))
    bad = CliRunner().invoke(cli, ["chain", "verify", str(out)])
    assert bad.exit_code == 1 and blob.name in bad.output


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--M", "4"], "0 <= M <= N-1"),
        (["--K", "5"], "K must be an integer in 1..K_max"),
        (["--dataset", "cifar"], "--dataset"),
        (["--samples-per-client", "400"], "need 1600 samples"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, data_root, extra, fragment):
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["run", *cli_args(data_root, *extra, "--out", str(out))])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("bladefl-validate: error:"), r.output
    assert fragment in lines[0]
    assert not out.exists()


def test_cli_missing_data_exits_2(tmp_path):
    r = CliRunner().invoke(cli, ["run", *cli_args(tmp_path / "empty", "--out", str(tmp_path / "run"))])
    assert r.exit_code == 2
    assert len([x for x in r.output.splitlines() if x]) == 1


def test_cli_sweep_k_writes_report(tmp_path, data_root):
    out = tmp_path / "sweep"
    args = [a for a in cli_args(data_root, "--seeds", "2", "--out", str(out))]
    i = args.index("--K")
    del args[i : i + 2]
    r = CliRunner().invoke(cli, ["sweep-k", *args])
    assert r.exit_code == 0, r.output
    for name in ("runs.csv", "per_k.csv", "README.md", "loss.png", "accuracy.png"):
        assert (out / name).is_file()
    assert "empirical K*" in r.output
    assert "bladefl-validate sweep-k" in (out / "README.md").read_text()


@pytest.mark.skipif("BLADEFL_DATA" not in os.environ, reason="set BLADEFL_DATA to the real datasets (CI does)")
def test_reduced_real_mnist_run(tmp_path):
    config = RunConfig(dataset="mnist", N=5, M=1, K=2, t_sum=30.0, alpha=1.0, beta=5.0, samples_per_client=128,
                       hidden=32, eta=0.05, difficulty_bits=10, seed=0)
    result = run_to_folder(config, tmp_path / "run", os.environ["BLADEFL_DATA"])
    assert result.final.global_train_loss < result.initial_train_loss
    assert result.final.test_accuracy > 0.3
    assert verify_run(tmp_path / "run").ok


def test_config_shares_the_theory_parameters_and_time_model():
    from bladefl_theory.solvers import kstar
    from bladefl_theory.timemodel import k_max, tau

    c = RunConfig(M=4, sigma2=0.1, K=3)
    assert (c.k_max, c.tau) == (k_max(100, 1, 10), tau(3, 100, 1, 10)) == (9, 23)
    p = c.theory_params()
    assert (p.N, p.M, p.sigma2, p.t_sum) == (20, 4, 0.1, 100.0)
    assert kstar(p).k_max == c.k_max


def test_the_top_level_api_names_functions_whatever_was_imported_first():
    import bladefl_validate
    import bladefl_validate.studies.sweep_k  # noqa: F401  (imports the study module as a side effect)
    from bladefl_validate import RunResult, simulate, sweep_k

    assert callable(simulate) and simulate.__name__ == "simulate"
    assert sweep_k.__name__ == "sweep_k" and RunResult.__name__ == "RunResult"
    assert set(bladefl_validate.__all__) >= {"simulate", "sweep_k", "RunConfig"}
    # Every public name resolves to what it names (a module that moved left one pointing nowhere).
    for name in bladefl_validate.__all__:
        assert name == "__version__" or getattr(bladefl_validate, name).__name__ == name, name


def test_a_batch_of_runs_gives_each_run_what_it_gets_alone(data_root):
    """simulate_many trains the honest clients of several runs in one computation; each run's results are still
    those simulate gives it alone, bit for bit (a sweep's numbers do not depend on how its runs were batched)."""
    from bladefl_validate.simulation import batch_key, simulate, simulate_many

    configs = [small_config(seed=0, M=1), small_config(seed=1, M=0), small_config(seed=2, M=2, sigma2=0.5)]
    assert len({batch_key(c) for c in configs}) == 1
    strip = lambda r: {k: v for k, v in r.__dict__.items() if k != "wall_seconds"}  # noqa: E731
    for c, together in zip(configs, simulate_many(configs, data_dir=data_root)):
        alone = simulate(c, data_dir=data_root)
        assert [strip(r) for r in together.rounds] == [strip(r) for r in alone.rounds]
        assert (together.lazy, together.initial_train_loss, together.initial_test_accuracy) == (
            alone.lazy, alone.initial_train_loss, alone.initial_test_accuracy)
        assert together.ledger_lines == alone.ledger_lines
    finals = [r.final.global_train_loss for r in simulate_many(configs, data_dir=data_root)]
    assert len(set(finals)) == 3  # three different runs, not one repeated
