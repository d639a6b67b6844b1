"""bladefl_theory.kstar: one entry, one answer for every form, the same as ``bladefl-theory kstar`` gives."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bladefl_platform.cli import json_text
from bladefl_platform.errors import InputError
from bladefl_theory import KStar, kstar
from bladefl_theory.cli import cli
from bladefl_theory.question import DEFAULT_PROFILE


def cli_json(*args: str) -> dict:
    r = CliRunner().invoke(cli, ["kstar", *args, "--json"], catch_exceptions=False)
    return json.loads(r.output[: r.output.rindex("}") + 1])


def python_json(answer: KStar) -> dict:
    return json.loads(json_text(answer.as_dict()))


@pytest.mark.parametrize("keywords, flags", [
    ({"M": 4, "sigma2": 0.1}, []),  # the README's example
    ({"M": 4, "sigma2": 0.1, "profile": "default"}, ["--profile", "default"]),
    ({"M": 2, "t_sum": 300.0, "profile": "fashion-mnist-mlp-calibrated"},
     ["--profile", "fashion-mnist-mlp-calibrated"]),
    ({"M": 19, "sigma2": 1e306}, []),  # no finite K: status 3 in both
])
def test_python_gives_the_command_lines_answer_in_every_field(keywords, flags):
    flagged = [*flags, *(x for k, v in keywords.items() if k != "profile" for x in (f"--{k}".replace("_", "-"),
                                                                                    str(v)))]
    assert python_json(kstar(**keywords)) == cli_json(*flagged)


def test_the_readme_example_is_the_calibrated_answer():
    answer = kstar(M=4, sigma2=0.1)
    assert answer.profile == DEFAULT_PROFILE == "mnist-mlp-calibrated" and answer.form == "drift"
    assert answer.k_star in answer.band and answer.status == 0 and answer.record_applies
    assert answer.tau == answer.table()[answer.k_star - 1]["tau"]
    assert answer.record_line and answer.record_line.startswith("profile mnist-mlp-calibrated (drift): K* inside")


def test_outside_the_domain_the_record_does_not_apply_and_is_not_quoted():
    answer = kstar(M=4, sigma2=0.1, t_sum=300.0)
    assert not answer.record_applies and answer.warnings
    assert answer.record is not None  # still there for a reader of --json, flagged as not applying
    assert "does not apply" in answer.record_line and "10 of 12" not in answer.record_line


def test_every_form_answers_with_the_same_keys():
    bound, calibrated = kstar(M=4, profile="default"), kstar(M=4)
    assert list(bound.as_dict()) == list(calibrated.as_dict())
    assert bound.solver is not None and bound.as_dict()["k_star_continuous"] is not None
    assert calibrated.solver is None and calibrated.as_dict()["solvers"] is None


def test_a_question_it_cannot_answer_is_an_input_error():
    with pytest.raises(InputError, match="unknown parameter 'K'"):
        kstar(M=4, K=3)
    with pytest.raises(InputError, match="constant of the paper's bound"):
        kstar(M=4, L=3.0)
    with pytest.raises(InputError, match="--variant chooses a form of the paper's bound"):
        kstar(variant="printed")
