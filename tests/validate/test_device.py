"""--device auto|cpu|cuda: which device a run computes on, and that it keeps CPU and CUDA results apart.

No GPU is assumed: CUDA is faked by monkeypatching torch.cuda.is_available where only the choice is tested,
and the refusal of --device cuda is tested where torch sees no GPU.
"""

import json

import pytest
import torch
from helpers import small_config
from validate_cli_helpers import SMALL, assert_bad_input, forbid_computation, invoke

from bladefl_platform.errors import InputError
from bladefl_validate.config import RunConfig
from bladefl_validate.simulation import batch_key, simulate
from bladefl_validate.tasks import RUN

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal on a machine without CUDA")
pytestmark = pytest.mark.usefixtures("private_cache")



@pytest.fixture
def without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_auto_without_cuda_is_cpu_in_every_respect(without_cuda):
    auto, cpu = RunConfig(device="auto"), RunConfig(device="cpu")
    assert auto.device == "cpu" and auto == cpu == RunConfig()
    # CPU configs keep the store keys and config.json they had before the device was part of a config.
    assert "device" not in auto.as_dict() and auto.as_dict() == cpu.as_dict()
    assert RUN.key(auto.as_dict()) == RUN.key(cpu.as_dict())
    assert "device" not in json.loads(auto.to_json())


def test_auto_with_cuda_is_cuda_and_keyed_apart_from_cpu(with_cuda):
    auto, cpu = RunConfig(device="auto"), RunConfig(device="cpu")
    assert auto.device == "cuda" and auto == RunConfig(device="cuda") != cpu
    assert auto.as_dict()["device"] == "cuda"
    assert RUN.key(auto.as_dict()) != RUN.key(cpu.as_dict())
    assert RunConfig.from_dict(auto.as_dict()) == auto
    assert batch_key(auto) != batch_key(cpu)  # never trained in one batch


def test_an_unknown_device_is_refused():
    with pytest.raises(InputError, match="device must be one of auto, cpu, cuda"):
        RunConfig(device="gpu")


def test_a_cuda_config_is_valid_anywhere_but_runs_only_where_cuda_is(without_cuda, data_root):
    config = small_config(device="cuda")  # e.g. read back from a store a GPU machine filled
    assert config.device == "cuda"
    with pytest.raises(InputError, match="--device cuda: .* sees no CUDA device"):
        simulate(config, data_dir=data_root)


@no_gpu
@pytest.mark.parametrize("name", ["run", "sweep-k", "estimate"])
def test_cli_refuses_device_cuda_without_cuda(tmp_path, data_root, monkeypatch, name):
    forbid_computation(monkeypatch)
    out = tmp_path / ("p.json" if name == "estimate" else "out")
    args = [name, *SMALL, *(["--K", "2"] if name != "sweep-k" else []), "--device", "cuda",
            "--data-dir", str(data_root), "--out", str(out)]
    assert_bad_input(invoke(args), "--device cuda")
    assert list(tmp_path.iterdir()) == []


def test_cli_auto_and_cpu_give_bit_identical_runs(tmp_path, data_root, without_cuda):
    folders = {}
    for device in ("auto", "cpu"):
        folders[device] = tmp_path / device
        r = invoke(["run", *SMALL, "--K", "2", "--device", device, "--data-dir", str(data_root),
                    "--out", str(folders[device])])
        assert r.exit_code == 0, r.stderr
    for name in ("config.json", "ledger.jsonl", "partition.csv"):
        assert (folders["auto"] / name).read_bytes() == (folders["cpu"] / name).read_bytes(), name
    metrics = [(f / "metrics.csv").read_text().splitlines() for f in folders.values()]
    wall = metrics[0][0].split(",").index("wall_seconds")
    rows = [[[c for i, c in enumerate(line.split(",")) if i != wall] for line in lines] for lines in metrics]
    assert rows[0] == rows[1]


def test_reports_record_the_device_auto_resolved_to(without_cuda):
    from bladefl_validate.cli import _command, sweep_k_cmd

    with sweep_k_cmd.make_context("sweep-k", ["--device", "auto", "--out", "x"]):
        line = _command("sweep-k")
    assert "--device cpu" in line and "auto" not in line
