"""Bring your own data and model: CIFAR-shaped [3, 32, 32] synthetic data and a small CNN, registered by a plugin
module (``BLADEFL_PLUGINS``), through run and sweep-k on the command line (sweep-k's workers import the plugin
too), and what is refused with one line."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from bladefl_platform.errors import InputError
from bladefl_validate.cli import cli

#: The plugin: makes its data itself (seeded), registers it and a small CNN. Imported by this process and the
#: sweep's workers alike.
PLUGIN = textwrap.dedent('''
    import torch
    from torch import nn

    from bladefl_validate.data import register_dataset
    from bladefl_validate.learning.model import register_model


    def synthetic(n, seed):
        """Ten classes, each a fixed random pattern in [3, 32, 32] plus noise: learnable by a small CNN."""
        g = torch.Generator().manual_seed(1234)
        patterns = torch.randn(10, 3, 32, 32, generator=g)
        g.manual_seed(seed)
        labels = torch.arange(n) % 10
        return patterns[labels] + 2.0 * torch.randn(n, 3, 32, 32, generator=g), labels


    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 5, stride=2, padding=2)
            self.fc = nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
            return self.fc(x.flatten(1))


    register_dataset("cifar-shaped", synthetic(640, 0), synthetic(200, 1))
    register_model("small-cnn", SmallCNN, dataset="cifar-shaped")
''')

SMALL = ["--dataset", "cifar-shaped", "--model", "small-cnn", "--N", "4", "--M", "1", "--samples-per-client", "32",
         "--batch-size", "16", "--t-sum", "24", "--beta", "10", "--eta", "0.05", "--difficulty-bits", "2",
         "--partition", "dirichlet", "--dirichlet-alpha", "1.0"]


@pytest.fixture
def plugin(tmp_path, monkeypatch, registry):
    """The plugin module on the path of this process and of any worker it starts, named by BLADEFL_PLUGINS."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "byo_cifar_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", f"{folder}:{':'.join(p for p in sys.path if p)}")
    monkeypatch.setenv("BLADEFL_PLUGINS", "byo_cifar_plugin")
    monkeypatch.delitem(sys.modules, "byo_cifar_plugin", raising=False)
    yield folder
    sys.modules.pop("byo_cifar_plugin", None)


def test_a_cifar_shaped_cnn_runs_end_to_end(plugin, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["run", *SMALL, "--K", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_global_train_loss"] < summary["initial_train_loss"]
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "cifar-shaped" and len(config["dataset_fingerprint"]) == 16
    assert config["model_fingerprint"].endswith("-2")
    assert CliRunner().invoke(cli, ["chain", "verify", str(out)]).exit_code == 0


def test_a_cifar_shaped_cnn_sweeps_k_on_workers(plugin, tmp_path):
    out = tmp_path / "sweep"
    r = CliRunner().invoke(cli, ["sweep-k", *SMALL, "--seeds", "2", "--workers", "2", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["k_star"] in (1, 2)
    runs = (out / "runs.csv").read_text().splitlines()
    assert len(runs) == 1 + 2 * 2  # K = 1, 2 and two seeds


def test_a_model_that_does_not_fit_its_data_gets_one_line_and_nothing_is_written(plugin, tmp_path):
    out = tmp_path / "run"
    # McMahan's CNN reads 28x28 images: CIFAR-shaped inputs do not fit it.
    r = CliRunner().invoke(cli, ["run", *SMALL, "--model", "cnn", "--K", "1", "--out", str(out)])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "model 'cnn' does not fit data set 'cifar-shaped'" in lines[0], r.stderr
    assert not out.exists()
    sweep = tmp_path / "sweep"
    r = CliRunner().invoke(cli, ["sweep-k", *SMALL, "--model", "cnn", "--seeds", "1", "--out", str(sweep)])
    assert r.exit_code == 2 and "does not fit" in r.stderr and not sweep.exists()


class _Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x)


@pytest.mark.usefixtures("registry")
def test_register_model_checks_the_module_on_one_batch_of_its_data():
    from bladefl_validate.data import register_dataset
    from bladefl_validate.learning.model import register_model

    register_dataset("tiny-images", (torch.zeros(20, 3, 8, 8), torch.arange(20) % 4))
    with pytest.raises(InputError, match=r"model 'flat' does not fit data set 'tiny-images': a batch \[2, 3, 8, 8\] "
                                         r"fails: .*shapes cannot be multiplied"):
        register_model("flat", _Flat, dataset="tiny-images")
    with pytest.raises(InputError, match=r"gives \(2, 10\), it must give logits \[2, 4\]"):
        register_model("flat", lambda: nn.Sequential(nn.Flatten(), nn.Linear(192, 10)), dataset="tiny-images")
    register_model("flat", lambda: nn.Sequential(nn.Flatten(), nn.Linear(192, 4)), dataset="tiny-images")
    register_model("mnist-flat", _Flat)  # MNIST's shape by default
    with pytest.raises(InputError, match="not a torch nn.Module"):
        register_model("nothing", lambda: None)  # type: ignore[arg-type,return-value]


@pytest.mark.usefixtures("registry")
@pytest.mark.parametrize("train, fragment", [
    ((torch.zeros(5, 3), torch.zeros(4)), "inputs [n >= 1, ...] and n labels"),
    ((torch.zeros(5), torch.zeros(5)), "inputs [n >= 1, ...] and n labels"),
    ((torch.full((4, 2), float("nan")), torch.arange(4)), "not all finite"),
    ((torch.zeros(4, 2), torch.zeros(4)), "1 class(es)"),
    (42, "must be (inputs, labels) or a data set"),
])
def test_register_dataset_refuses_bad_data_with_one_line(train, fragment):
    from bladefl_validate.data import register_dataset

    with pytest.raises(InputError) as err:
        register_dataset("bad", train)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="must be new"):
        register_dataset("mnist", (torch.zeros(4, 2), torch.arange(4)))


@pytest.mark.usefixtures("registry")
def test_a_torchvision_style_data_set_with_any_labels_registers_as_class_codes():
    from bladefl_validate.data import load_dataset, register_dataset

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return np.full((2, 3), float(i), dtype=np.float32), ["b", "a", "c"][i % 3]

    info = register_dataset("pairs", Pairs())
    assert info.input_shape == (2, 3) and info.num_classes == 3
    train = load_dataset("pairs", train=True)
    assert train.labels.tolist() == [1, 0, 2, 1, 0, 2] and train.images.shape == (6, 2, 3)
    assert load_dataset("pairs", train=False).labels.tolist() == train.labels.tolist()  # test defaults to train
    assert register_dataset("pairs", Pairs()).fingerprint == info.fingerprint  # the same data, the same print


def test_the_generic_path_on_a_cpu_equals_the_vmapped_one_and_batching_changes_no_bit():
    from bladefl_validate.learning.model import ModuleSpec
    from bladefl_validate.learning.training import _train_modules_each, _train_modules_vmapped, epoch_permutations

    def factory():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))

    spec = ModuleSpec("conv", factory, (3, 6, 6), 5)
    g = torch.Generator().manual_seed(0)
    n, m = 5, 24
    X, Y = torch.randn(n * m, 3, 6, 6, generator=g), torch.randint(5, (n * m,), generator=g)
    orders = epoch_permutations(n, m, 2, g) + (torch.arange(n) * m).view(1, n, 1)
    W0 = torch.stack([spec.init(g) for _ in range(n)])
    each, vmapped = W0.clone(), W0.clone()
    _train_modules_each(spec, each, X, Y, orders, 0.1, 8)
    _train_modules_vmapped(spec, vmapped, X, Y, orders, 0.1, 8)
    assert not torch.equal(each, W0) and torch.allclose(each, vmapped, atol=1e-5)
    alone = W0[2:3].clone()
    _train_modules_each(spec, alone, X, Y, orders[:, 2:3], 0.1, 8)
    assert torch.equal(alone[0], each[2])  # a client trained with others or alone: the same bits


def test_a_cifar_shaped_cnn_is_calibrated_end_to_end(plugin, tmp_path):
    from bladefl_theory.profiles import load_profile

    out = tmp_path / "cnn.json"
    system = [a for a in SMALL if a not in ("--M", "1", "--t-sum", "24", "--beta", "10")]
    box = "t_sum=24:36,beta=4:10,M=0:1,sigma2=0:0.1"
    r = CliRunner().invoke(cli, ["calibrate", *system, "--box", box, "--seeds", "1", "--form", "drift",
                                 "--workers", "2", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert "client-epochs" in r.stderr and "estimated from three short runs" in r.stderr  # stated before the runs
    profile = json.loads(out.read_text())
    domain = profile["domain"]
    assert (domain["dataset"], domain["model"], domain["N"], domain["samples_per_client"]) == \
        ("cifar-shaped", "small-cnn", 4, 32)
    assert domain["partition"] == "dirichlet" and domain["dirichlet_alpha"] == 1.0
    assert "classes_per_client" not in domain and len(domain["dataset_fingerprint"]) == 16
    # The box the pilots span: here the box asked for, every parameter from end to end.
    assert domain["box"] == {"t_sum": [24.0, 36.0], "beta": [4.0, 10.0], "M": [0, 1], "sigma2": [0.0, 0.1]}
    cost = profile["calibration"]["cost"]
    assert cost["spent"]["runs"] == 3 + 7 + 4 + 3 and cost["estimated"]["runs"] == cost["spent"]["runs"]
    assert cost["spent"]["cpu_hours"] > 0 and cost["estimated"]["client_epochs"] == cost["spent"]["client_epochs"]
    assert load_profile(str(out)).form == "drift"
    assert (tmp_path / "cnn.sqlite").is_file()  # the store beside the profile, by default
