"""Every bladefl-validate command driven with random bad input: status 2, one error line, nothing written.

Each example starts from options that would run (test_the_base_options_would_run checks that they do) and
overrides one to three of them with values that are bad whatever the others are: a value of the wrong
type, one that breaks a rule of the run, work beyond the bound on client-epochs, an output or store that
cannot be used, an unreachable scheduler, a stray argument; options that change nothing about the input's
fault (--json, --strict, --allow-long, --measured-only...) are mixed in. Whatever the mix: status 2, exactly
one line on stderr besides warnings, no traceback, an empty stdout under --json, an answer within
CALL_LIMIT seconds, and nothing written where the command was pointed nor in its data. Bad input is refused
before any run starts, so no simulation runs here: one would fail the test
(validate_cli_helpers.forbid_computation).

test_valid_extremes_say_no_nan: sweep-k at valid but extreme settings, its tasks answered at once
(validate_cli_helpers.fake_tasks): status 0 equal to --json's, strict JSON, no nan or inf in what it prints or
writes, nothing changed outside its --out.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from helpers import call_limit, snapshot, write_data_root
from hypothesis import event, given, settings
from hypothesis import strategies as st
from validate_cli_helpers import SMALL, assert_bad_input, fake_tasks, forbid_computation, invoke

from bladefl_platform import atomic


def examples(n: int) -> int:
    """``n`` examples, times ``BLADEFL_FUZZ_SCALE`` (default 1) for a longer search."""
    return n * int(os.environ.get("BLADEFL_FUZZ_SCALE", "1"))


#: Seconds a call may take before it counts as hung: bad input is refused in well under a second on an idle
#: machine; this is a guard against a hang (a run that trains until killed), not a measure of speed.
CALL_LIMIT = 120


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """MNIST- and Fashion-MNIST-format data with enough samples for the paper's 20 clients x 512 (reproduce,
    detection-report, calibrate, the K* study)."""
    return write_data_root(tmp_path_factory.mktemp("fuzzdata"),
                           {"mnist": (12000, 100, 0), "fashion-mnist": (12000, 100, 1)})


@pytest.fixture(scope="module")
def no_computation():
    with pytest.MonkeyPatch.context() as mp:
        forbid_computation(mp)
        yield


# Values bad whatever the other options are (the base is the tiny deployment of SMALL: N=4, K_max=2, |D_i|=64).
BAD_TEXT = ["abc", "", "1.2.3", "9" * 5000]
RUN_OPTIONS = {
    "--N": ["-1", "0", "1", "1.5", "99999999999999999999"],
    "--M": ["-1", "1e3", "4", "99999999999999999999"],
    "--sigma2": ["-1", "nan", "inf", "-inf", "1e300", "1e61"],
    "--alpha": ["0", "-1", "nan", "inf", "1e-300", "5e-324"],  # tiny alpha: tau about 1e300, beyond the bound
    "--beta": ["-1", "nan", "inf"],
    "--t-sum": ["0", "-1", "nan", "inf", "5", "1e300"],
    "--eta": ["0", "-1", "nan", "inf", "1e300", "1e39"],
    "--samples-per-client": ["0", "-1", "1000000", "63"],
    "--partition": ["nope", "Classes"],
    "--classes-per-client": ["0", "-1", "3", "11"],
    "--dirichlet-alpha": ["0", "-1", "nan", "inf"],
    "--model": ["resnet", "MLP"],  # cnn ships since the merge of robust-validate: not bad input
    "--hidden": ["0", "-1", "3000000"],
    "--batch-size": ["0", "-1"],
    "--difficulty-bits": ["-1", "29", "300"],
    "--dataset": ["cifar", "MNIST"],
    "--device": ["gpu", "CUDA"],  # not cuda: bad only on a machine without a GPU (tests/validate/test_device.py)
}
ONLY_RUN = {
    "--K": ["0", "-1", "3", "2.5"],
    "--seed": ["-1", "18446744073709551616", "1e3"],
    "--detect": ["x"],
    "--detect-threshold": ["0.5", "-1", "nan"],  # without --detect, any threshold is refused
    "--encrypt": ["aes"],
}
FLAGS = {"--exclude-flagged": "needs a detector", "--keep-key": "needs --encrypt ckks"}
SEEDS = ["", ",", "0", "-1", "1,1", "a", "1001", "0,18446744073709551616"]
EXECUTION = {
    "--scheduler": ["localhost:1", "tcp://", "tcp://127.0.0.1:1", "tcp://h:99999", "inproc"],
    "--workers": ["0", "-1", "10000", "x"],
}
STRAY = ["--nope", "extra"]
#: Options that change nothing about whether the input is bad, per command (a flag, or a flag and its value).
NEUTRAL_RUN = [("--json",), ("--quiet",)]  # not --allow-long: it makes work beyond the bound good input
NEUTRAL_STORE = [("--json",), ("--strict",), ("--quiet",), ("--workers", "1")]
NEUTRAL = {
    "run": [*NEUTRAL_RUN, ("--seed", "3"), ("--encrypt", "none")],
    "sweep-k": [*NEUTRAL_RUN, *NEUTRAL_STORE, ("--keep-runs",)],
    "partition": [("--seed", "5")],
    "estimate": [*NEUTRAL_RUN, *NEUTRAL_STORE, ("--name", "p"), ("--wstar-max-iter", "5")],
    "gap": [*NEUTRAL_RUN, *NEUTRAL_STORE, ("--profile", "default")],
    "reproduce": [*NEUTRAL_STORE, ("--difficulty-bits", "2")],
    "detection-report": NEUTRAL_STORE,
    # --allow-long: a pilot beyond the bound is then beyond a sweep's limit on runs, as bad.
    "calibrate": [*NEUTRAL_STORE, ("--allow-long",), ("--form", "drift"), ("--name", "x"), ("--dataset", "mnist")],
    "kstar-report": [*NEUTRAL_STORE, ("--measured-only",)],
    "kstar-confirm": [*NEUTRAL_STORE, ("--measured-only",)],
}
PILOTS = ["t_sum=100,t_sum=120", "x=1", "t_sum=abc", "t_sum", "t_sum=1e9", "t_sum=1e300", "M=-1", "M=1.5", "beta=0",
          "sigma2=nan", "t_sum=inf", "M=99"]

FOLDER_OUT = ["<under-a-file>", "<proc>", "<foreign>", "<theirs>"]
STORE = ["<notes.sqlite>", "<dir.sqlite>", "<under-a-file>"]


def with_bad(options: dict[str, list[str]]) -> dict[str, list[str]]:
    return {flag: values + BAD_TEXT if flag not in ("--out", "--store") else values for flag, values in options.items()}


COMMANDS: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "run": (["run", *SMALL, "--K", "2"],
            with_bad({**RUN_OPTIONS, **ONLY_RUN, "--out": FOLDER_OUT})),
    "sweep-k": (["sweep-k", *SMALL],
                with_bad({**RUN_OPTIONS, "--seeds": SEEDS, **EXECUTION, "--out": FOLDER_OUT, "--store": STORE})),
    "partition": (["partition", "--N", "4", "--samples-per-client", "64"],
                  with_bad({k: RUN_OPTIONS[k] for k in ("--N", "--samples-per-client", "--partition",
                                                         "--classes-per-client", "--dirichlet-alpha", "--dataset")}
                           | {"--seed": ONLY_RUN["--seed"], "--out": FOLDER_OUT})),
    "estimate": (["estimate", *SMALL, "--K", "2", "--seeds", "1"],
                 with_bad({**RUN_OPTIONS, "--K": ONLY_RUN["--K"], "--seeds": SEEDS, **EXECUTION,
                           "--M": RUN_OPTIONS["--M"] + ["0"], "--wstar-max-iter": ["0", "-1"],
                           "--wstar-loss-floor": ["-1", "nan", "inf"],
                           "--out": ["<under-a-file>", "<proc>", "p.txt", "<folder.json>"], "--store": STORE})),
    "gap": (["gap", *SMALL, "--seeds", "1"],
            with_bad({**RUN_OPTIONS, "--seeds": SEEDS, **EXECUTION, "--profile": ["no-such-profile", "<notes.sqlite>"],
                      "--out": FOLDER_OUT, "--store": STORE})),
    "reproduce": (["reproduce", "--datasets", "mnist", "--seeds", "1", "--quiet"],
                  with_bad({"--datasets": ["cifar", ",", "mnist,cifar"], "--difficulty-bits": ["-1", "29"],
                            "--seeds": SEEDS, **EXECUTION, "--out": FOLDER_OUT, "--store": STORE})),
    "detection-report": (["detection-report", "--datasets", "mnist", "--M", "1", "--sigma2", "0.01", "--quiet"],
                         with_bad({"--datasets": ["cifar", ",", "mnist,mnist"], "--M": ["0", "-1", "1,1", "20", "a"],
                                   "--sigma2": ["nan", "-1", "1e300", "0.1,0.1", "a"], "--seeds": SEEDS, **EXECUTION,
                                   "--out": FOLDER_OUT, "--store": STORE + ["<inside-out>"]})),
    "calibrate": (["calibrate", "--seeds", "1"],
                  with_bad({"--dataset": RUN_OPTIONS["--dataset"], "--pilot": PILOTS, "--form": ["nope", "Drift"],
                            "--seeds": SEEDS, **EXECUTION, "--store": STORE,
                            "--out": ["<under-a-file>", "<proc>", "p.txt", "<folder.json>"]})),
    "kstar-report": (["kstar-report"], with_bad({**EXECUTION, "--out": FOLDER_OUT, "--store": STORE})),
    "kstar-confirm": (["kstar-confirm"], with_bad({**EXECUTION, "--out": FOLDER_OUT, "--store": STORE})),
}
#: Commands whose --out is a file (a profile), and those whose --store is required (the fuzz gives one).
FILE_OUT = ("estimate", "calibrate")
STORE_REQUIRED = ("calibrate", "kstar-confirm")


def resolve(value: str, where: Path, command: str) -> str:
    """A placeholder as a path in ``where`` (set up as it says), or the value itself."""
    if not value.startswith("<"):
        return value
    name = value.strip("<>")
    if name == "under-a-file":
        (where / "a-file").write_text("")
        return str(where / "a-file" / ("p.json" if command in FILE_OUT else "x"))
    if name == "proc":
        return f"/proc/bladefl-fuzz-{os.getpid()}/out"
    if name == "foreign":
        (where / "foreign").mkdir(exist_ok=True)
        (where / "foreign" / "README.md").write_text("mine")
        return str(where / "foreign")
    if name == "theirs":
        if not (where / "theirs").exists():
            with atomic.owned_directory(where / "theirs", "bladefl-theory sensitivity") as tmp:
                (tmp / "README.md").write_text("theirs")
        return str(where / "theirs")
    if name == "notes.sqlite":
        (where / "notes.sqlite").write_text("not a database " * 40)
        return str(where / "notes.sqlite")
    if name in ("dir.sqlite", "folder.json"):
        (where / name).mkdir(exist_ok=True)
        return str(where / name)
    if name == "inside-out":
        return str(where / "out" / "results.sqlite")
    raise AssertionError(value)


def bad_choices(command: str):
    """One to three bad (flag, value) pairs for ``command``, and a few options that change nothing."""
    pool = COMMANDS[command][1]
    flags = sorted(pool) + ["<stray>"] + (sorted(FLAGS) if command == "run" else [])

    def values(flag: str):
        if flag == "<stray>":
            return st.sampled_from(STRAY).map(lambda s: (flag, s))
        if flag in FLAGS:
            return st.just((flag, None))
        return st.sampled_from(pool[flag]).map(lambda v: (flag, v))

    bad = st.lists(st.sampled_from(flags), min_size=1, max_size=3, unique=True).flatmap(
        lambda chosen: st.tuples(*(values(f) for f in chosen)))
    return st.tuples(bad, st.lists(st.sampled_from(NEUTRAL[command]), max_size=2, unique=True))


def run_example(command: str, chosen, data: Path, where: Path) -> None:
    bad, neutral = chosen
    base = list(COMMANDS[command][0])
    args = [*base, "--data-dir", str(data)]
    out = str(where / ("p.json" if command in FILE_OUT else "out"))
    extra: list[str] = [part for option in neutral for part in option]
    for flag, value in bad:
        event(f"{command} {flag}")
        if flag == "<stray>":
            extra.append(value)
        elif value is None:
            extra.append(flag)
        elif flag == "--out":
            out = resolve(value, where, command)
        else:
            extra += [flag, resolve(value, where, command)]
    if command in STORE_REQUIRED and "--store" not in extra:
        extra += ["--store", str(where / "given.sqlite")]
    before = snapshot(where), snapshot(data)
    with call_limit(CALL_LIMIT):
        result = invoke([*args, *extra, "--out", out])
    event(f"{command} status {result.exit_code}")
    assert_bad_input(result)
    if "--json" in extra:
        assert result.stdout == "", result.stdout  # an error is one line on stderr, never a JSON status 0
    assert (snapshot(where), snapshot(data)) == before, (args, extra, out)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_commands(command, data, no_computation, tmp_path_factory):
    @settings(max_examples=examples(40))
    @given(chosen=bad_choices(command))
    def check(chosen):
        run_example(command, chosen, data, tmp_path_factory.mktemp("fuzz"))

    check()


TIPS = ["xyz", "g" * 64, "0" * 63, "", "0" * 65]


@settings(max_examples=examples(20))
@given(run_dir=st.sampled_from(["<missing>", "<a-file>", "<folder>"]),
       tip=st.one_of(st.none(), st.sampled_from(TIPS), st.just("0" * 64)),
       bits=st.one_of(st.none(), st.sampled_from(["-1", "257", "x", "", "8"])),
       stray=st.sampled_from([[], [], ["--nope"], ["extra"]]))
def test_chain_verify(tmp_path_factory, run_dir, tip, bits, stray):
    where = tmp_path_factory.mktemp("chain")
    path = {"<missing>": where / "missing", "<a-file>": where / "a-file", "<folder>": where / "run"}[run_dir]
    if run_dir == "<a-file>":
        path.write_text("")
    if run_dir == "<folder>":
        path.mkdir()
    bad = run_dir != "<folder>" or (tip is not None and tip != "0" * 64) or bits not in (None, "8") or bool(stray)
    args = ["chain", "verify", str(path), *(["--tip", tip] if tip is not None else []),
            *(["--difficulty-bits", bits] if bits is not None else []), *stray]
    before = snapshot(where)
    result = invoke(args)
    if bad:
        assert_bad_input(result)
    else:  # an empty folder is a well-formed question with the answer "invalid"
        assert result.exit_code == 1 and "INVALID" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(where) == before


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_base_options_would_run(command, data, tmp_path):
    """Guard against a fuzz test whose examples fail for a reason of their own: without the bad values the
    command gets as far as computing (which the guard turns into a test failure); partition, which runs
    nothing, succeeds."""
    out = tmp_path / ("p.json" if command in FILE_OUT else "out")
    store = ["--store", str(tmp_path / "given.sqlite")] if command in STORE_REQUIRED else []
    args = [*COMMANDS[command][0], "--data-dir", str(data), *store, "--out", str(out)]
    if command == "partition":
        assert invoke(args).exit_code == 0 and (out / "partition.csv").is_file()
        return
    with pytest.MonkeyPatch.context() as mp:
        forbid_computation(mp)
        with pytest.raises(pytest.fail.Exception, match="a computation started"):
            invoke(args)
    assert list(tmp_path.iterdir()) == []


# Valid settings at their extremes (the base is SMALL: N=4, K_max=2, |D_i|=64); --allow-long lets tau grow huge.
EXTREMES = {
    "--M": ["0", "3"],
    "--sigma2": ["0", "5e-324", "1e60"],
    "--alpha": ["1e-17", "3"],  # 1e-17: tau about 1e18, beyond the bound, below 2**63
    "--beta": ["10", "11.5"],  # a tiny beta makes K_max, the sweep's runs, beyond its limit: bad input
    "--eta": ["5e-324", "3e38"],
    "--dirichlet-alpha": ["1e-300", "1e300"],
    "--partition": ["iid", "dirichlet", "shards", "classes"],
    "--model": ["logreg", "cnn"],
    "--seeds": ["1", "0,18446744073709551615"],
}
NAN = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"--json printed {constant}")

    return json.loads(text, parse_constant=refuse)


@settings(max_examples=examples(15))
@given(chosen=st.dictionaries(st.sampled_from(sorted(EXTREMES)), st.none(), max_size=3).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.sampled_from(EXTREMES[k]) for k in keys})),
       as_json=st.booleans())
def test_valid_extremes_say_no_nan(data, tmp_path_factory, chosen, as_json):
    where = tmp_path_factory.mktemp("extreme")
    out = where / "out"
    (where / "mine.txt").write_text("precious")
    args = ["sweep-k", *SMALL, "--allow-long", "--data-dir", str(data), *[x for kv in chosen.items() for x in kv],
            "--out", str(out), *(["--json"] if as_json else [])]
    before = snapshot(data), (where / "mine.txt").read_bytes()
    with pytest.MonkeyPatch.context() as mp:
        fake_tasks(mp)
        with call_limit(CALL_LIMIT):
            result = invoke(args)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert result.exit_code == 0, (args, result.stderr)
    if as_json:
        assert _strict_json(result.stdout)["status"] == result.exit_code
    else:
        assert not NAN.search(result.stdout), result.stdout
    for path in out.rglob("*"):
        if path.suffix in (".csv", ".md", ".json"):
            assert not NAN.search(path.read_text()), (path.name, args)
    assert (snapshot(data), (where / "mine.txt").read_bytes()) == before
    assert sorted(p.name for p in where.iterdir()) == ["mine.txt", "out"]
