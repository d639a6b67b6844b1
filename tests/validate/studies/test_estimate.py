"""Estimating the bound's learning constants: the estimators on problems with known answers, and the command."""

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from helpers import cli_args, run_flags, small_config

from bladefl_theory.cli import cli as theory_cli
from bladefl_platform.errors import InputError
from bladefl_theory.profiles import CONSTANT_NAMES, available_profiles, load_profile
from bladefl_theory.solvers import kstar
from bladefl_validate.cli import cli
from bladefl_validate.studies.estimate import (
    SAMPLE_COLUMNS,
    client_estimates,
    estimate_constants,
    lazy_theta,
    samples_path_for,
    spread,
    write_estimate,
)
from bladefl_validate.learning.model import ModelSpec
from bladefl_validate.optimum import OptimumOptions, find_optimum
from bladefl_validate.simulation import simulate
from bladefl_validate.learning.training import train_clients

SHIPPED = ("mnist-mlp", "mnist-logreg", "fashion-mnist-mlp", "fashion-mnist-logreg")


# data_root and private_cache come from conftest.py.
pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture(scope="module")
def estimated(data_root, tmp_path_factory):
    """Two seeds of the small logreg setting (w* to a loss of 1e-4, enough here and faster)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BLADEFL_CACHE", str(tmp_path_factory.mktemp("cache")))
        return estimate_constants(small_config(model="logreg"), [0, 1], data_root,
                                  optimum=OptimumOptions(loss_floor=1e-4))


def _problem(n=3, m=40, features=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    spec = ModelSpec("logreg", input_dim=features, num_classes=classes)
    X = torch.randn(n, m, features, generator=g, dtype=torch.float64)
    Y = torch.randint(classes, (n, m), generator=g)
    w = 0.3 * torch.randn(spec.dim, generator=g, dtype=torch.float64)
    return spec, X, Y, w, g


def _client_loss(spec, X, Y):
    return lambda v: F.cross_entropy(spec.forward(v.unsqueeze(0), X.unsqueeze(0))[0], Y)


def test_small_steps_recover_the_directional_curvature_and_slope():
    # For w_i = w + h*v with h -> 0: L_i -> ||H_i v||/||v|| and xi_i -> |grad F_i(w).v|/||v||.
    spec, X, Y, w, g = _problem()
    V = torch.randn(X.shape[0], spec.dim, generator=g, dtype=torch.float64)
    V /= V.norm(dim=1, keepdim=True)
    h = 1e-5
    est = client_estimates(spec, w + h * V, w, X, Y)
    for i in range(X.shape[0]):
        f = _client_loss(spec, X[i], Y[i])
        _, Hv = torch.autograd.functional.hvp(f, w, V[i])
        grad = torch.autograd.functional.jacobian(f, w)
        assert est.distance[i].item() == pytest.approx(h, rel=1e-9)
        assert est.L[i].item() == pytest.approx(Hv.norm().item(), rel=1e-3)
        assert est.xi[i].item() == pytest.approx(abs(grad @ V[i]).item(), rel=1e-3, abs=1e-7)


def test_estimates_respect_the_analytic_constants_of_softmax_regression():
    # Boehning: diag(p) - pp^T <= I/2, so L_i <= lambda_max(Xt^T Xt)/(2m) with Xt = [X, 1];
    # ||grad of one sample's loss|| = ||p - e_y||·||xt|| <= sqrt(2)·||xt||, so xi_i <= sqrt(2)·mean ||xt||.
    spec, X, Y, w, g = _problem(n=4, m=50, features=8, classes=4, seed=1)
    scales = torch.tensor([[0.01], [0.3], [1.0], [3.0]])
    W_local = w + torch.randn(4, spec.dim, generator=g, dtype=torch.float64) * scales
    est = client_estimates(spec, W_local, w, X, Y)
    Xt = torch.cat([X, torch.ones(*X.shape[:2], 1, dtype=X.dtype)], dim=2)
    for i in range(4):
        L_bound = torch.linalg.eigvalsh(Xt[i].T @ Xt[i] / X.shape[1]).max().item() / 2
        xi_bound = math.sqrt(2) * Xt[i].norm(dim=1).mean().item()
        assert 0 < est.L[i].item() <= L_bound
        assert 0 < est.xi[i].item() <= xi_bound
        assert est.grad_norm[i].item() <= xi_bound


def test_delta_follows_definition_1_and_vanishes_for_identical_clients():
    spec, X, Y, w, g = _problem(n=3, m=30)
    W_local = w + 0.1 * torch.randn(3, spec.dim, generator=g, dtype=torch.float64)
    est = client_estimates(spec, W_local, w, X, Y)
    grads = torch.stack([torch.autograd.functional.jacobian(_client_loss(spec, X[i], Y[i]), w) for i in range(3)])
    expected = (grads - grads.mean(dim=0)).norm(dim=1)
    assert torch.allclose(est.delta, expected, rtol=1e-9, atol=1e-12)
    assert torch.allclose(est.grad_norm, grads.norm(dim=1), rtol=1e-9)
    same = client_estimates(spec, W_local, w, X[:1].expand(3, -1, -1), Y[:1].expand(3, -1))
    assert same.delta.abs().max().item() < 1e-12
    # A client whose model is the global model has no ratio to report.
    at_w = client_estimates(spec, torch.stack([w, W_local[1]]), w, X[:2], Y[:2])
    assert math.isnan(at_w.L[0].item()) and math.isnan(at_w.xi[0].item()) and math.isfinite(at_w.L[1].item())


def test_theta_is_zero_for_a_copy_of_identical_training_and_adds_the_noise_in_quadrature():
    # A lazy client whose data equal its source's, trained full-batch (so sample order is moot),
    # would have trained exactly the model it copied: theta = 0 up to rounding. The noise of
    # variance sigma2 adds d·sigma2 to the squared distance to the submitted model.
    spec = ModelSpec("logreg")  # d = 7850
    g = torch.Generator().manual_seed(3)
    X = torch.randn(1, 32, spec.input_dim, generator=g).expand(2, -1, -1)
    Y = torch.randint(10, (1, 32), generator=g).expand(2, -1)
    w_start = spec.init(g)
    source = train_clients(spec, w_start.unsqueeze(0), X[:1], Y[:1], 3, 0.1, batch_size=32, generator=g)
    sigma2 = 0.01
    submitted = source + math.sqrt(sigma2) * torch.randn(source.shape, generator=g)
    theta, theta_sub = lazy_theta(spec, w_start, source, submitted, X[1:], Y[1:], 3, 0.1, 32,
                                  torch.Generator().manual_seed(9))
    moved = (source - w_start).norm().item()
    assert moved > 0.1
    assert theta.item() < 1e-5 * moved
    assert theta_sub.item() ** 2 == pytest.approx(theta.item() ** 2 + spec.dim * sigma2, rel=0.1)
    # Other data: the copy is far from what the lazy client would have trained.
    X2 = torch.randn(1, 32, spec.input_dim, generator=g)
    other, _ = lazy_theta(spec, w_start, source, submitted, X2, Y[1:], 3, 0.1, 32, torch.Generator().manual_seed(9))
    assert other.item() > 0.1 * moved


def test_optimum_of_a_problem_with_a_finite_minimizer():
    # Random labels on 3 features: not separable, so the convex loss has a finite minimizer, and
    # L-BFGS from two starting points reaches the same minimum with a vanishing gradient.
    g = torch.Generator().manual_seed(4)
    spec = ModelSpec("logreg", input_dim=3, num_classes=3)
    X = torch.randn(300, 3, generator=g)
    Y = torch.randint(3, (300,), generator=g)
    a = find_optimum(spec, spec.init(g), X, Y, OptimumOptions(gtol=1e-7))
    b = find_optimum(spec, spec.init(g) + 1.0, X, Y, OptimumOptions(gtol=1e-7))
    assert a.converged and not a.interpolates and a.reason in ("gradient", "relative-change")
    assert a.grad_norm < 1e-4 and a.loss > 0.5
    assert a.loss == pytest.approx(b.loss, abs=1e-6)
    assert a.path[0][0] == 0 and a.path[-1][0] == a.iterations and a.path[-1][2] == pytest.approx(a.distance)


def test_optimum_of_interpolated_data_stops_at_the_loss_floor():
    g = torch.Generator().manual_seed(5)
    spec = ModelSpec("logreg", input_dim=20, num_classes=2)
    X = torch.randn(10, 20, generator=g)  # 10 points in 20 dimensions: separable
    Y = torch.arange(10) % 2
    opt = find_optimum(spec, spec.init(g), X, Y, OptimumOptions(loss_floor=1e-4))
    assert opt.reason == "loss-floor" and opt.interpolates and opt.loss <= 1e-4 and opt.distance > 0


def test_bad_options_and_seeds_are_input_errors(data_root):
    with pytest.raises(InputError):
        OptimumOptions(window=0)
    with pytest.raises(InputError):
        OptimumOptions(dtype="float16")
    with pytest.raises(InputError):
        estimate_constants(small_config(), [], data_root)
    with pytest.raises(InputError):
        estimate_constants(small_config(), [1, 1], data_root)


def test_observer_leaves_the_run_unchanged(tmp_path, data_root):
    seen = []
    a = simulate(small_config(seed=2), tmp_path / "a", data_root)
    b = simulate(small_config(seed=2), tmp_path / "b", data_root, observer=seen.append)
    strip = lambda r: {k: v for k, v in r.__dict__.items() if k != "wall_seconds"}  # noqa: E731
    assert [strip(r) for r in a.rounds] == [strip(r) for r in b.rounds]
    assert [s.round for s in seen] == [1, 2]
    s = seen[-1]
    assert s.global_train_loss == b.final.global_train_loss
    assert torch.equal(s.W.mean(dim=0), s.w)
    assert s.lazy.tolist() == b.lazy and len(s.sources) == 1 and s.sources[0].item() not in b.lazy
    assert torch.equal(seen[1].w_start, seen[0].w)


def test_estimate_end_to_end_and_profile_round_trip(tmp_path, estimated):
    result = estimated
    config = result.config
    s = result.samples
    assert list(s.columns) == list(SAMPLE_COLUMNS)
    # Each seed runs clean (M=0) and as configured (M=1): L, xi, delta from the first, theta, epsilon from the second.
    assert sorted(s["M"].unique()) == [0, config.M]
    assert len(s) == 2 * 2 * config.K * config.N and s["lazy"].sum() == 2 * config.K * config.M
    assert not s.loc[s["M"] == 0, "lazy"].any()
    assert s.loc[s["lazy"], "theta"].notna().all() and s.loc[~s["lazy"], "theta"].isna().all()
    assert len(result.rounds) == 2 * 2 * config.K and len(result.per_seed) == 2
    for name in CONSTANT_NAMES:
        assert math.isfinite(result.constants[name]) and result.constants[name] > 0, name
    clean = result.rounds[result.rounds["M"] == 0]
    lazy = result.rounds[result.rounds["M"] == config.M]
    for name in ("L", "xi", "delta"):
        assert result.constants[name] == pytest.approx(np.median(clean[name])), name
    # epsilon: per seed the smallest gap F(w^k) - F(w*) over the lazy run's rounds; phi from ||w0 - w*||^2.
    for _, row in result.per_seed.iterrows():
        assert row["epsilon"] == pytest.approx(lazy.loc[lazy["seed"] == row["seed"], "gap"].min())
        assert row["epsilon_clean"] == pytest.approx(clean.loc[clean["seed"] == row["seed"], "gap"].min())
        assert row["phi"] == pytest.approx((1 - config.eta * result.constants["L"] / 2) / row["distance"] ** 2)
    assert result.spreads["theta"]["min"] <= result.constants["theta"] <= result.spreads["theta"]["max"]
    assert set(result.summary().index) == set(CONSTANT_NAMES)

    profile_path, samples_path = write_estimate(result, tmp_path / "out" / "tiny.json", command="test")
    assert samples_path == tmp_path / "out" / "tiny.samples.csv" == samples_path_for(profile_path)
    data = json.loads(profile_path.read_text())
    loaded = load_profile(profile_path)
    assert loaded.name == "tiny" and loaded.constants == data["constants"]
    for name in CONSTANT_NAMES:
        assert loaded.constants[name] == pytest.approx(result.constants[name], rel=1e-5)
    prov = loaded.provenance
    assert prov["method"] == "estimated" and prov["seeds"] == [0, 1] and prov["command"] == "test"
    assert prov["F_w_star"] == pytest.approx(result.f_star, rel=1e-5)
    assert prov["lemma1_condition_eta_L_lt_1"] is (config.eta * result.constants["L"] < 1)
    assert set(prov["spread"]) >= set(CONSTANT_NAMES)
    # The notes say what applies to this run only: the interpolation note exactly when every seed's w* interpolates.
    assert any("interpolated" in n for n in prov["notes"]) is bool(result.per_seed["interpolates"].all())
    assert loaded.params(eta=config.eta).L == loaded.constants["L"]
    assert not list((tmp_path / "out").glob("*.tmp"))
    mask = os.umask(0)
    os.umask(mask)
    assert profile_path.stat().st_mode & 0o044 == 0o044 & ~mask  # readable as any file written here


def test_profile_needs_lazy_clients_for_theta(estimated, tmp_path):
    # Without lazy clients there is no theta sample, and no profile can be written.
    result = dataclasses.replace(estimated, config=estimated.config.replace(M=0),
                                 constants={**estimated.constants, "theta": float("nan")})
    with pytest.raises(InputError, match="theta"):
        write_estimate(result, tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()


def test_cli_writes_a_profile_bladefl_theory_reads(tmp_path, data_root):
    out = tmp_path / "tiny.json"
    r = CliRunner().invoke(cli, ["estimate", *cli_args(data_root, "--seeds", "1", "--out", str(out), model="logreg")])
    assert r.exit_code == 0, r.output
    assert out.is_file() and (tmp_path / "tiny.samples.csv").is_file()
    assert "eta*L" in r.output and "theta" in r.output
    prov = json.loads(out.read_text())["provenance"]
    assert prov["command"].startswith("bladefl-validate estimate") and "--seeds 1" in prov["command"]
    # kstar reads the profile: its answer (and status: 3 when no K has a finite bound) is the solver's own.
    system = dict(N=4, M=1, sigma2=0.01, alpha=1.0, beta=10.0, t_sum=24.0, eta=0.05)
    profile = load_profile(out)
    expected = kstar(profile.params(**system), profile.form, cross_check=False)
    t = CliRunner().invoke(theory_cli, ["kstar", "--profile", str(out), *run_flags(system), "--json"])
    assert t.exit_code == (0 if expected.success else 3), t.output
    answer = json.loads(t.stdout)
    assert (answer["status"], answer["k_star"], answer["form"]) == (t.exit_code, expected.k_star, profile.form)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--M", "0", "--out", "p.json"], "--M must be >= 1"),
        (["--M", "1", "--out", "p.txt"], ".json"),
        (["--M", "1", "--N", "1", "--out", "p.json"], "N must be"),
        (["--M", "1", "--seeds", "0,0", "--out", "p.json"], "seeds"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, data_root, extra, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["estimate", "--data-dir", str(data_root), "--quiet", *extra])
    assert r.exit_code == 2
    assert message in r.output and len(r.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("p.*"))


def test_spread_ignores_nan():
    s = spread([1.0, float("nan"), 3.0, 2.0, 4.0])
    assert s["median"] == 2.5 and s["min"] == 1.0 and s["max"] == 4.0 and s["n"] == 4 and s["iqr"] == 1.5
    assert spread([float("nan")])["median"] is None


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_estimated_profiles_load_by_name(name):
    assert name in available_profiles()
    profile = load_profile(name)
    prov = profile.provenance
    assert prov["method"] == "estimated"
    assert prov["command"].startswith("bladefl-validate estimate")
    assert f"--out bladefl_theory/profile_data/{name}.json" in prov["command"]
    assert prov["dataset"] == name.rsplit("-", 1)[0] and prov["run"]["model"] == name.rsplit("-", 1)[1]
    assert isinstance(prov["F_w_star"], float) and len(prov["seeds"]) >= 2
    assert all(math.isfinite(v) for v in profile.constants.values())
    # Estimated as estimate_constants does now: Lemma 1's constants from the clean runs, theta from the lazy ones.
    assert "clean runs, M=0" in prov["spread"]["L"]["over"] and "epsilon_clean" in prov["spread"]
    assert f"M={prov['run']['M']}" in prov["spread"]["theta"]["over"] and prov["run"]["M"] >= 1


def test_estimate_tasks_are_keyed_by_everything_that_decides_them():
    from bladefl_validate.studies.estimate import ESTIMATE

    run = small_config().as_dict()
    base = {"run": run, "optimum": dataclasses.asdict(OptimumOptions()), "dtype": "float64"}
    keys = {
        ESTIMATE.key(base),
        ESTIMATE.key({**base, "optimum": dataclasses.asdict(OptimumOptions(loss_floor=1e-4))}),
        ESTIMATE.key({**base, "dtype": "float32"}),
        ESTIMATE.key({**base, "run": {**run, "seed": 1}}),
    }
    assert len(keys) == 4
    json.dumps(base)  # what the store records
    # Existing stores are reused only while a seed's key stays the same: pinned as computed before the estimate
    # moved into studies/estimate/ (a new RunConfig field or OptimumOptions option changes it, and stored seeds run
    # again).
    from bladefl_validate.studies.estimate import estimate_configs

    (config,) = estimate_configs(small_config(model="logreg"), [0])
    assert ESTIMATE.key(config) == "f2eb2b2c0e816d5afad1706ac465a0f19537d2f4527ab8ddfd900a07327505e1"
