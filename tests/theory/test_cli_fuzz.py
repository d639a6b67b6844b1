"""Every bladefl-theory command driven with random bad (and valid but extreme) input.

Whatever the input: status 2 exactly when the input is bad (decided here, by converting the
values as click does and constructing Params), else 3 exactly when there is no finite bound (no
integer K with one for kstar and bound, no real K with D(K) > 0 for convexity), else 0; one line on
stderr when the status is not 0 and none when it is; never a traceback; nothing written under --out
unless it succeeded.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import re
from importlib import resources

import pytest
from click.testing import CliRunner
from helpers import call_limit
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bladefl_theory.cli import cli
from bladefl_theory.convexity import MAX_GRID_POINTS
from bladefl_platform.errors import InputError
from bladefl_theory.profiles import load_profile
from bladefl_theory.solvers import feasible_interval, finite_integers
from bladefl_theory.timemodel import k_max

def examples(n: int) -> int:
    """``n`` examples, times ``BLADEFL_FUZZ_SCALE`` (default 1) for a longer search."""
    return n * int(os.environ.get("BLADEFL_FUZZ_SCALE", "1"))


INT_OPTIONS = {"--N": "N", "--M": "M"}
FLOAT_OPTIONS = {
    "--sigma2": "sigma2", "--alpha": "alpha", "--beta": "beta", "--t-sum": "t_sum", "--eta": "eta", "--L": "L",
    "--xi": "xi", "--delta": "delta", "--epsilon": "epsilon", "--phi": "phi", "--theta": "theta",
}
BAD_TEXT = ["", " ", "abc", "1,5", "0x10", "1e", "--", "1.2.3", "½", "9" * 5000, "1e999999999", "\t"]
BAD_FLOATS = ["-1", "-1e-300", "0", "-0", "nan", "inf", "-inf", "1e309", "1.7e308", "5e-324"]
BAD_INTS = ["-1", "0", "1", "9007199254740993", "99999999999999999999", "1.5", "1e3"]
# Values valid at the defaults, typical or extreme, so that valid input is drawn often.
GOOD = {
    "--N": ["20", "5", "2", "100", "9007199254740992"], "--M": ["0", "1", "4", "10"],
    "--sigma2": ["0", "0.01", "0.3", "1e300", "5e-324"], "--alpha": ["1", "0.5", "0.001", "1e-300"],
    "--beta": ["10", "1", "0.01", "1e-300"], "--t-sum": ["100", "50", "11", "1000"],
    "--eta": ["0.01", "0.001", "1e-300", "0.09"], "--L": ["10", "1", "1e-300"], "--xi": ["1", "10", "1e300", "1e-300"],
    "--delta": ["10", "1", "1e300", "1e-300"], "--epsilon": ["1", "0.1", "1e-300", "1e300", "10"],
    "--phi": ["1", "0.1", "1e300", "1e-300"], "--theta": ["0", "0.1", "1e300"],
}


def option_text(flag: str):
    bad = st.one_of(
        st.sampled_from((BAD_INTS if flag in INT_OPTIONS else BAD_FLOATS) + BAD_TEXT),
        st.integers(-(10**30), 10**30).map(str) if flag in INT_OPTIONS else st.floats().map(repr),
    )
    return st.one_of(st.sampled_from(GOOD[flag]), st.sampled_from(GOOD[flag]), bad)


STRAY = [[]] * 12 + [["--nope"], ["extra"], ["--json=1"], ["--help=x"]]


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    """Paths (and names) for --profile: shipped, missing, and files with broken contents."""
    root = tmp_path_factory.mktemp("profiles")
    good = load_profile("default").constants
    contents = {
        "binary.json": b"\x89PNG\r\n\x1a\n\x00\xff\xfe",
        "nested.json": b"[" * 50_000 + b"]" * 50_000,
        "empty.json": b"",
        "list.json": b"[1, 2]",
        "nan.json": json.dumps({"constants": {**good, "L": float("nan")}}).encode(),
        "bigint.json": b'{"constants": {"L": 1' + b"0" * 400
        + b', "xi": 1, "delta": 1, "epsilon": 1, "phi": 1, "theta": 0}}',
        "digits.json": b'{"constants": {"L": ' + b"9" * 5000 + b"}}",
        "negative.json": json.dumps({"constants": {**good, "delta": -1}}).encode(),
        "text.json": json.dumps({"constants": {**good, "phi": "1"}}).encode(),
        "valid.json": json.dumps({"constants": {**good, "L": 5.0}}).encode(),
        "extreme.json": json.dumps({"constants": {**good, "epsilon": 1e-300, "phi": 1e300}}).encode(),
    }
    for name, data in contents.items():
        (root / name).write_bytes(data)
    (root / "folder.json").mkdir()
    return [str(root / name) for name in [*contents, "folder.json"]] + [
        "default", "mnist-mlp", "missing", "../profile_data/default", str(root / "absent.json"),
    ]


def expected_params(options: dict[str, str], profile: str | None):
    """Params the CLI should build from these option texts, or None if the input is bad."""
    given_values = {}
    for flag, text in options.items():
        try:
            value = int(text) if flag in INT_OPTIONS else float(text)
            given_values[INT_OPTIONS.get(flag) or FLOAT_OPTIONS[flag]] = value
        except ValueError:
            return None
    try:
        return load_profile(profile or "default").params(**given_values)
    except InputError:
        return None


def param_options():
    flags = list(INT_OPTIONS) + list(FLOAT_OPTIONS)
    return st.lists(st.sampled_from(flags), max_size=3, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({f: option_text(f) for f in chosen})
    )


profile_index = st.one_of(st.just(99), st.integers(0, 20))


#: Longest one call may take before it counts as a hang (a limit per call, not a timing assertion: far above any
#: call's real time, even on a loaded machine).
HANG_SECONDS = 60


def run(args):
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()
    with call_limit(HANG_SECONDS):
        return runner.invoke(cli, args, catch_exceptions=False)


#: A number that is not one, as a word of the output.
NOT_A_NUMBER = re.compile(r"(?<![\w.])-?(nan|inf|infinity)(?![\w])", re.IGNORECASE)


def check(result, expected: set[int]):
    stderr_lines = [line for line in result.stderr.splitlines() if line.strip()]
    event(f"status {result.exit_code}")
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert "internal error" not in result.stderr, result.stderr
    assert result.exit_code in expected, (result.exit_code, expected, result.stderr)
    if result.stdout.startswith("{"):  # --json: one strict object whose status is the exit status
        text = result.stdout
        obj = json.loads(text[: text.rindex("}") + 1], parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
        assert obj["status"] == result.exit_code
    if result.exit_code == 0:
        assert not NOT_A_NUMBER.search(result.stdout), result.stdout
    if result.exit_code == 0:  # success may warn (outside the profile's domain, a hand-calibrated profile) and say
        # what it wrote (sensitivity)
        assert all(line.startswith(("warning: ", "wrote ")) for line in stderr_lines), result.stderr
    else:
        errors = [line for line in stderr_lines if not line.startswith("warning: ")]
        assert len(errors) == 1 and errors[0].startswith("bladefl-theory: error: "), result.stderr


def as_args(options: dict[str, str]) -> list[str]:
    return [f"{flag}={text}" for flag, text in options.items()]


def outcome(params, bad: bool, variant: str = "per-round", exists=finite_integers) -> set[int]:
    """The one status to expect: 2 for bad input, else 0 where ``exists`` finds a finite bound, else 3."""
    if params is None or bad:
        return {2}
    return {0 if exists(params, variant) is not None else 3}


@settings(max_examples=examples(40))
@given(options=param_options(), profile=profile_index, variant=st.sampled_from([None, "printed", "per-round", "x"]),
       as_json=st.booleans(), stray=st.sampled_from(STRAY))
def test_kstar(profiles, options, profile, variant, as_json, stray):
    prof = profiles[profile] if profile < len(profiles) else None
    # Without --profile, kstar would use the calibrated profile; the fuzz is about the bound's path.
    # --check: the fuzz covers cvxpy's cross-check too.
    args = ["kstar", *as_args(options), "--profile", prof or "default", "--check",
            *(["--variant", variant] if variant else []),
            *(["--json"] if as_json else []), *stray]
    params = expected_params(options, prof)
    result = run(args)
    check(result, outcome(params, bool(stray) or variant == "x", variant or "per-round"))
    if as_json and result.exit_code in (0, 3):
        text = result.stdout
        json.loads(text[: text.rindex("}") + 1], parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


k_specs = st.one_of(st.none(), st.sampled_from(["1", "1,3,5", "9", "0", "-1", "10", "", ",", "a", "1e3", "1.5", "1,,2",
                                                 "99999999999999999999"]),
                    st.lists(st.integers(-3, 12), min_size=1, max_size=4).map(lambda ks: ",".join(map(str, ks))))


@settings(max_examples=examples(40))
@given(options=param_options(), profile=profile_index, k_list=k_specs,
       fmt=st.sampled_from([[], ["--csv"], ["--json"], ["--csv", "--json"]]), stray=st.sampled_from(STRAY))
def test_bound(profiles, options, profile, k_list, fmt, stray):
    prof = profiles[profile] if profile < len(profiles) else None
    args = ["bound", *as_args(options), *(["--profile", prof] if prof else []),
            *([f"--K={k_list}"] if k_list is not None else []), *fmt, *stray]
    params = expected_params(options, prof)
    bad = params is None or bool(stray) or len(fmt) == 2
    if not bad and k_list is not None:
        try:
            ks = [int(x) for x in k_list.split(",") if x.strip()]
        except ValueError:
            ks = []
        km = k_max(params.t_sum, params.alpha, params.beta)
        bad = not ks or any(not 1 <= k <= km for k in ks)
    check(run(args), outcome(params, bad))


@settings(max_examples=examples(25))
@given(options=param_options(), profile=profile_index,
       grid=st.one_of(st.none(), st.sampled_from(["3", "50", "2", "0", "-5", "x", "", "1e3", str(MAX_GRID_POINTS + 1),
                                                  "100000000", "9" * 30])),
       as_json=st.booleans(), stray=st.sampled_from(STRAY))
def test_convexity(profiles, options, profile, grid, as_json, stray):
    prof = profiles[profile] if profile < len(profiles) else None
    args = ["convexity", *as_args(options), *(["--profile", prof] if prof else []),
            *([f"--grid={grid}"] if grid is not None else []),
            *(["--json"] if as_json else []), *stray]
    params = expected_params(options, prof)
    bad = params is None or bool(stray)
    if grid is not None:
        try:
            bad = bad or not 3 <= int(grid) <= MAX_GRID_POINTS
        except ValueError:
            bad = True
    result = run(args)
    check(result, outcome(params, bad, exists=feasible_interval))
    if as_json and result.exit_code in (0, 3):
        text = result.stdout
        json.loads(text[: text.rindex("}") + 1], parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


@settings(max_examples=examples(15))
@given(fmt=st.sampled_from([None, "latex", "pretty", "html", ""]),
       expand=st.sampled_from([[], ["--expand"], ["--no-expand"]]),
       extra=st.sampled_from([[], ["--M=3"], ["--nope"], ["extra"]]))
def test_formula(fmt, expand, extra):
    args = ["formula", *([f"--format={fmt}"] if fmt is not None else []), *expand, *extra]
    check(run(args), {2} if extra or fmt in ("html", "") else {0})


# (spec, the values it stands for, or None when the spec itself is refused)
VARY = [
    ("M=0,1", {"M": [0, 1]}), ("sigma2=0.01,0.3", {"sigma2": [0.01, 0.3]}), ("beta=5:10:5", {"beta": [5.0, 10.0]}),
    ("epsilon=1e-300,1e300", {"epsilon": [1e-300, 1e300]}), ("N=5:6", {"N": [5, 6]}),
    ("M=0:30", {"M": list(range(31))}),
    ("t_sum=1e300,100", {"t_sum": [1e300, 100.0]}), ("alpha=0.001,1", {"alpha": [0.001, 1.0]}),
    ("M", None), ("M=", None), ("Q=1:3", None), ("K=1:2", None), ("sigma2=0:1", None), ("sigma2=0:1:1e-300", None),
    ("M=0:100000000", None), ("M=0.5:2", None), ("M=3:1", None), ("sigma2=a,b", None), ("M=0:4:0", None),
    ("sigma2=nan,1", None), ("sigma2=0:1e999999999:1", None), ("=1", None), ("M=1,,2", None),
    ("sigma2=0:1:0.0000001", None),
    ("sigma2=" + ",".join(["0.1"] * 10_001), None),
]


@settings(max_examples=examples(25))
@given(options=param_options(),
       vary=st.lists(st.one_of(st.integers(0, 7), st.integers(0, 7), st.integers(0, len(VARY) - 1)), max_size=3),
       variant=st.sampled_from([None, "printed", "printed", "x"]), stray=st.sampled_from(STRAY))
def test_sensitivity(tmp_path_factory, options, vary, variant, stray):
    where = tmp_path_factory.mktemp("sens")
    out = where / "out"
    args = ["sensitivity", *as_args(options), *(f"--vary={VARY[i][0]}" for i in vary),
            *(["--variant", variant] if variant else []), "--out", str(out), "--quiet", *stray]
    base = expected_params(options, None)
    specs = [VARY[i][1] for i in vary]
    bad = base is None or bool(stray) or variant == "x" or not vary or len(vary) > 2 or None in specs
    if not bad:
        merged = [next(iter(s.items())) for s in specs]
        bad = len({name for name, _ in merged}) != len(merged)
    if not bad:
        names = [name for name, _ in merged]
        for point in itertools.product(*(values for _, values in merged)):
            try:
                base.replace(**dict(zip(names, point)))
            except InputError:
                bad = True
                break
    result = run(args)
    check(result, {2} if bad else {0})
    if result.exit_code == 0:
        assert (out / ".bladefl-owner.json").is_file()
    else:
        assert list(where.iterdir()) == [], list(where.iterdir())


def test_the_oracle_sees_valid_input():
    # Guard against a fuzz test that only ever expects status 2.
    assert expected_params({"--alpha": "0.001", "--M": "3"}, None) is not None
    assert expected_params({"--alpha": "nan"}, None) is None
    assert not math.isnan(expected_params({}, "default").L)


# --------------------------------------------------------------------------- kstar with a calibrated profile

SYSTEM_OPTIONS = {"--N": "N", "--M": "M", "--sigma2": "sigma2", "--alpha": "alpha", "--beta": "beta",
                  "--t-sum": "t_sum", "--eta": "eta"}
CALIBRATED_GOOD = {**GOOD, "--sigma2": ["0", "0.01", "0.3", "1e306", "5e-324"], "--alpha": ["1", "0.5", "5e-324"],
                   "--t-sum": ["100", "150", "1e6", "1e9", "1e15", "1e300"], "--M": ["0", "4", "19"]}


def calibrated_expected(options: dict[str, str], profile: str, extra_bad: bool) -> set[int]:
    """The status kstar should end with on a calibrated profile: 2 for bad input, else 0 or 3 (no finite K)."""
    from bladefl_theory.forms import form_kstar
    from bladefl_theory.params import SYSTEM_DEFAULTS, check_system

    if extra_bad or set(options) - set(SYSTEM_OPTIONS):
        return {2}
    try:
        prof = load_profile(profile)
        given = {SYSTEM_OPTIONS[f]: int(t) if f in INT_OPTIONS else float(t) for f, t in options.items()}
        system = {**SYSTEM_DEFAULTS, **{k: v for k, v in prof.system.items() if k in ("N", "alpha", "beta", "t_sum",
                                                                                      "eta")}, **given}
        check_system(**system)
        r = form_kstar(prof.form, system, prof.constants, prof.tolerance)
    except (InputError, ValueError):
        return {2}
    return {0 if r.k_star is not None else 3}


def calibrated_options():
    flags = list(INT_OPTIONS) + list(FLOAT_OPTIONS)
    return st.lists(st.sampled_from(flags), max_size=3, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({f: st.one_of(st.sampled_from(CALIBRATED_GOOD[f]), option_text(f))
                                              for f in chosen}))


@settings(max_examples=examples(40), deadline=None)
@given(options=calibrated_options(), profile=st.sampled_from(["mnist-mlp-calibrated", "fashion-mnist-mlp-calibrated"]),
       variant=st.sampled_from([None, None, "printed"]), check_flag=st.sampled_from([False, False, True]),
       yours=st.sampled_from([[], ["--model", "cnn"], ["--samples-per-client", "64"], ["--samples-per-client", "x"]]),
       as_json=st.booleans(), stray=st.sampled_from(STRAY))
def test_kstar_calibrated(options, profile, variant, check_flag, yours, as_json, stray):
    args = ["kstar", *as_args(options), "--profile", profile, *(["--variant", variant] if variant else []),
            *(["--check"] if check_flag else []), *yours, *(["--json"] if as_json else []), *stray]
    bad = bool(stray) or bool(variant) or check_flag or "x" in yours
    check(run(args), calibrated_expected(options, profile, bad))


# --------------------------------------------------------------------------- hand-edited profiles

SHIPPED = json.loads((resources.files("bladefl_theory") / "profile_data" / "mnist-mlp-calibrated.json").read_text())


def fields(data, path=()):
    """Every field of a profile, as a path of keys: each object's keys, and each list as a whole."""
    for key, value in data.items():
        yield (*path, key)
        if isinstance(value, dict):
            yield from fields(value, (*path, key))


FIELDS = sorted(fields(SHIPPED))
#: A wrong type, NaN, inf, negative, zero, huge, and text no terminal should receive.
EDITS = ["x", None, [], {}, True, float("nan"), float("inf"), -float("inf"), -1, -1e-300, 0, 0.0, 1e308, 10**400,
         5e-324, "line\nbreak\x1b[31m"]


def edit(where: tuple[str, ...], value):
    data = copy.deepcopy(SHIPPED)
    here = data
    for key in where[:-1]:
        here = here[key]
    here[where[-1]] = value
    return data


@pytest.mark.parametrize("where", FIELDS, ids="/".join)
def test_every_field_of_a_profile_edited_every_way_loads_or_is_refused_in_one_line(tmp_path, where):
    # Every field and edit through the loader (milliseconds each); the fuzz below takes a sample through the CLI.
    for i, value in enumerate(EDITS):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps(edit(where, value)))
        try:
            load_profile(str(path))
        except InputError as exc:
            assert "\n" not in str(exc) and "\x1b" not in str(exc)


@settings(max_examples=examples(120), deadline=None)
@given(where=st.sampled_from(FIELDS), value=st.sampled_from(EDITS), as_json=st.booleans(),
       M=st.sampled_from(["0", "4", "19"]))
def test_hand_edited_profiles(tmp_path_factory, where, value, as_json, M):
    path = tmp_path_factory.mktemp("edited") / "p.json"
    path.write_text(json.dumps(edit(where, value)))  # NaN and Infinity as Python's json writes them
    event("/".join(where))
    try:
        load_profile(str(path))
        expected = calibrated_expected({"--M": M}, str(path), False)
    except InputError:
        expected = {2}
    result = run(["kstar", "--profile", str(path), "--M", M, *(["--json"] if as_json else [])])
    check(result, expected)
    assert "\x1b" not in result.output + result.stderr


# --------------------------------------------------------------------------- the group's own options

@pytest.mark.parametrize("args, status", [
    (["--version"], 0), (["--help"], 0), (["-h"], 0), (["-q", "kstar", "--M", "4"], 0), (["-v", "formula"], 0),
    (["--nope"], 2), (["nope"], 2), ([], 2), (["kstar", "--help"], 0), (["bound", "--help"], 0),
    (["convexity", "--help"], 0), (["sensitivity", "--help"], 0), (["formula", "--help"], 0),
])
def test_group_options(args, status):
    result = run(args)
    assert result.exit_code == status and "Traceback" not in result.output + result.stderr
