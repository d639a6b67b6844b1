"""Every bladefl-validate command driven with random bad input: status 2, one error line, nothing written.

Each example starts from options that would run (test_the_base_options_would_run checks that they do) and
overrides one to three of them with values that are bad whatever the others are: a value of the wrong
type, one that breaks a rule of the run, an output or store that cannot be used, an unreachable scheduler,
a stray argument. Whatever the mix: status 2, exactly one line on stderr besides warnings, no traceback,
and nothing written where the command was pointed. Bad input is refused before any run starts, so no
simulation runs here: one would fail the test (validate_cli_helpers.forbid_computation).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import snapshot, write_data_root
from hypothesis import event, given, settings
from hypothesis import strategies as st
from validate_cli_helpers import SMALL, assert_bad_input, forbid_computation, invoke

from bladefl_platform import atomic


def examples(n: int) -> int:
    """``n`` examples, times ``BLADEFL_FUZZ_SCALE`` (default 1) for a longer search."""
    return n * int(os.environ.get("BLADEFL_FUZZ_SCALE", "1"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """MNIST-format data with enough samples for the paper's 20 clients x 512 (reproduce, detection-report)."""
    return write_data_root(tmp_path_factory.mktemp("fuzzdata"), {"mnist": (12000, 100, 0)})


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
    "--alpha": ["0", "-1", "nan", "inf"],
    "--beta": ["-1", "nan", "inf"],
    "--t-sum": ["0", "-1", "nan", "inf", "5"],
    "--eta": ["0", "-1", "nan", "inf"],
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
}


def resolve(value: str, where: Path, command: str) -> str:
    """A placeholder as a path in ``where`` (set up as it says), or the value itself."""
    if not value.startswith("<"):
        return value
    name = value.strip("<>")
    if name == "under-a-file":
        (where / "a-file").write_text("")
        return str(where / "a-file" / ("p.json" if command == "estimate" else "x"))
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
    pool = COMMANDS[command][1]
    flags = sorted(pool) + ["<stray>"] + (sorted(FLAGS) if command == "run" else [])

    def values(flag: str):
        if flag == "<stray>":
            return st.sampled_from(STRAY).map(lambda s: (flag, s))
        if flag in FLAGS:
            return st.just((flag, None))
        return st.sampled_from(pool[flag]).map(lambda v: (flag, v))

    return st.lists(st.sampled_from(flags), min_size=1, max_size=3, unique=True).flatmap(
        lambda chosen: st.tuples(*(values(f) for f in chosen)))


def run_example(command: str, chosen, data: Path, where: Path) -> None:
    base = list(COMMANDS[command][0])
    default_out = "p.json" if command == "estimate" else "out"
    args = [*base, "--data-dir", str(data)]
    out = str(where / default_out)
    extra: list[str] = []
    for flag, value in chosen:
        event(f"{command} {flag}")
        if flag == "<stray>":
            extra.append(value)
        elif value is None:
            extra.append(flag)
        elif flag == "--out":
            out = resolve(value, where, command)
        else:
            extra += [flag, resolve(value, where, command)]
    before = snapshot(where)
    result = invoke([*args, *extra, "--out", out])
    event(f"{command} status {result.exit_code}")
    assert_bad_input(result)
    assert snapshot(where) == before, (args, extra, out)


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
    out = tmp_path / ("p.json" if command == "estimate" else "out")
    args = [*COMMANDS[command][0], "--data-dir", str(data), "--out", str(out)]
    if command == "partition":
        assert invoke(args).exit_code == 0 and (out / "partition.csv").is_file()
        return
    with pytest.MonkeyPatch.context() as mp:
        forbid_computation(mp)
        with pytest.raises(pytest.fail.Exception, match="a computation started"):
            invoke(args)
    assert list(tmp_path.iterdir()) == []
