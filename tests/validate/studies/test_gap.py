import numpy as np
import pandas as pd
import pytest

from bladefl_theory import Params
from bladefl_theory import bound as B
from bladefl_theory.forms import bound_values
from bladefl_validate.studies.gap import FORMS, analyse_gap, k_star_of, write_gap_report


def per_k_from(values, std=0.01):
    ks = np.arange(1, len(values) + 1)
    return pd.DataFrame(
        {"tau": [90, 40, 23, 15, 10, 6, 4, 2, 1][: len(ks)], "final_global_train_loss_mean": values,
         "final_global_train_loss_std": std},
        index=pd.Index(ks, name="K"),
    )


def test_affine_image_of_the_bound_is_recovered():
    p = Params(M=4)
    b = np.asarray(B.bound_value(np.arange(1, 10), p, "per-round"), dtype=float)
    f_star = 0.2
    measured = np.where(np.isfinite(b), 0.3 * np.nan_to_num(b, posinf=0) + 0.05, 2.0) + f_star
    result = analyse_gap(per_k_from(measured), f_star, p)
    fit = result.fits["per-round"]
    assert fit.spearman == pytest.approx(1.0)
    assert fit.slope == pytest.approx(0.3) and fit.intercept == pytest.approx(0.05) and fit.r2 == pytest.approx(1.0)
    assert fit.finite_points == int(np.isfinite(b).sum())
    assert result.k_star_measured == 7 == fit.k_star_bound
    ratio = result.table["ratio_per-round"].dropna()
    assert np.allclose(ratio, b[np.isfinite(b)] / (0.3 * b[np.isfinite(b)] + 0.05))


def test_anticorrelated_measurement_gives_negative_spearman():
    p = Params()
    b = np.asarray(B.bound_value(np.arange(1, 10), p, "printed"), dtype=float)
    measured = np.where(np.isfinite(b), -np.nan_to_num(b, posinf=0), 0) + 5.0
    assert analyse_gap(per_k_from(measured), 0.0, p).fits["printed"].spearman == pytest.approx(-1.0)


def test_too_few_finite_points_give_no_fit(tmp_path):
    p = Params(M=19, sigma2=0.3)
    result = analyse_gap(per_k_from(np.linspace(2, 1, 9)), 0.1, p)
    assert result.fits["per-round"].spearman is None and result.fits["per-round"].k_star_bound is None
    write_gap_report(result, tmp_path, "test", "cmd", [0])
    assert "n/a" in (tmp_path / "README.md").read_text()
    assert (tmp_path / "gap.png").is_file() and (tmp_path / "gap.csv").is_file()


def test_self_consistent_forms_are_finite_and_their_k_star_is_the_argmin():
    # Where the bound with the profile's epsilon is finite nowhere, the +sc forms still give a curve and a K*.
    p = Params(M=19, sigma2=0.3)
    measured = np.linspace(2, 1, 9)
    result = analyse_gap(per_k_from(measured), 0.1, p)
    assert set(result.fits) == set(FORMS) == {"per-round", "printed", "per-round+sc", "printed+sc"}
    for form in ("per-round+sc", "printed+sc"):
        b = result.table[f"bound_{form}"]
        assert b.notna().all()
        assert np.allclose(b, B.bound_self_consistent(np.arange(1, 10), p, form.split("+")[0]))
        assert result.fits[form].k_star_bound == int(b.idxmin()) == k_star_of(b.index.to_numpy(), b.to_numpy())
        assert result.fits[form].finite_points == 9 and result.fits[form].spearman is not None
    with pytest.raises(ValueError, match="form"):
        bound_values("per-round+xx", np.arange(1, 3), p)
