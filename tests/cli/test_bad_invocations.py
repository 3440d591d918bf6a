"""Bad command lines, table-driven: each ends in one line on stderr that names the flag or
argument at fault, exit code 2, and nothing on disk created or changed. Every flag of
every subcommand has a case, and every case is refused while the input is checked,
before anything is compiled."""

import dataclasses
import hashlib
import pathlib
import shlex
import types

import pytest

from gcsampler import cli
from gcsampler.cli import setup
from gcsampler.core import devices, loop
from gcsampler.factorization import splitting
from gcsampler.runs import classify_study, files

# One line per bad command line: the arguments ({run}, {sweep}, {study}, {old_study},
# {file} and {inputs} are the places the fixture makes) and what the message must name.
BAD_INVOCATIONS = [
    # no command, unknown command or flag
    ("", "COMMAND"),
    ("fly", "fly"),
    ("--width 5", "COMMAND"),
    ("run --no_such_flag", "no_such_flag"),
    ("run extra", "extra"),
    # flagfiles
    ("run --flagfile=", "--flagfile"),
    ("run --flagfile", "--flagfile"),
    ("run --flagfile={inputs}/missing.flags", "missing.flags"),
    ("run --flagfile={inputs}", "flagfile"),
    ("run --flagfile={inputs}/not-utf8.flags", "not-utf8.flags"),
    ("run --flagfile={inputs}/self.flags", "self.flags includes itself"),
    ("run --flagfile={inputs}/a.flags", "a.flags includes itself"),
    ("run --flagfile={inputs}/width0.flags", "--width"),
    ("sweep --flagfile=", "--flagfile"),
    ("classify --flagfile={inputs}/not-utf8.flags", "not-utf8.flags"),
    ("report {run} --flagfile={inputs}/self.flags", "self.flags includes itself"),
    # run: the problem
    ("run --task regression", "--task"),
    ("run --task ''", "--task"),
    ("run --rows 0", "--rows"),
    ("run --rows -2", "--rows"),
    ("run --cols 0", "--cols"),
    ("run --cols x", "--cols"),
    ("run --rank 6", "--rank"),
    ("run --rank 0", "--rank"),
    ("run --rows 2 --cols 3 --rank 3", "--rank"),
    ("run --gt_norm 0", "--gt_norm"),
    ("run --gt_norm nan", "--gt_norm"),
    ("run --gt_norm -1", "--gt_norm"),
    ("run --measurements 25", "--measurements"),
    ("run --measurements 0", "--measurements"),
    ("run --measurements 1e9", "--measurements"),
    ("run --problem_seed -1", "--problem_seed"),
    ("run --problem_seed 4294967296", "--problem_seed"),
    # run: the network and prior
    ("run --depth 0", "--depth"),
    ("run --depth -1", "--depth"),
    ("run --width 0", "--width"),
    ("run --width abc", "--width"),
    ("run --width 1.5", "--width"),
    ("run --width=", "--width"),
    ("run --activation swish", "--activation"),
    ("run --activation no_module:thing", "--activation"),
    ("run --leaky_slope nan", "--leaky_slope"),
    ("run --leaky_slope inf", "--leaky_slope"),
    ("run --prior cauchy", "--prior"),
    ("run --normalize=maybe", "--normalize"),
    ("run --nonormalize=1", "--normalize"),
    # run: G&C
    ("run --eps 0", "--eps"),
    ("run --eps nan", "--eps"),
    ("run --eps -0.1", "--eps"),
    ("run --eps inf", "--eps"),
    ("run --eps x", "--eps"),
    ("run --samples 0", "--samples"),
    ("run --samples lots", "--samples"),
    ("run --samples 1.5", "--samples"),
    ("run --samples nan", "--samples"),
    ("run --samples 0x10", "--samples"),
    ("run --samples -1", "--samples"),
    ("run --samples 1e30", "--samples"),
    ("run --seed -1", "--seed"),
    ("run --seed 4294967296", "--seed"),
    ("run --seed x", "--seed"),
    ("run --sampler magic", "--sampler"),
    ("run --activation tanh --sampler wishart", "--sampler"),
    ("run --batch -3", "--batch"),
    ("run --batch 0", "--batch"),
    ("run --batch 2.5", "--batch"),
    ("run --batch big", "--batch"),
    ("run --batch 1e9 --samples 1e9 --nogd", "--batch"),
    ("run --devices 0", "--devices"),
    ("run --devices 99", "--devices"),
    ("run --devices some", "--devices"),
    ("run --devices -1", "--devices"),
    ("run --log2_block 0", "--log2_block"),
    ("run --log2_block 5", "--log2_block"),
    ("run --log2_block 21", "--log2_block"),
    ("run --log2_block x", "--log2_block"),
    # run: splitting
    ("run --method annealing", "--method"),
    ("run --method ''", "--method"),
    ("run --method splitting --particles 2", "--particles"),
    ("run --method splitting --particles 16777217", "--particles"),
    ("run --particles x", "--particles"),
    ("run --method splitting --replicates 0", "--replicates"),
    ("run --replicates -1", "--replicates"),
    ("run --method splitting --move hmc", "--move"),
    ("run --move ''", "--move"),
    ("run --method splitting --moves 0", "--moves"),
    ("run --method splitting --moves some", "--moves"),
    ("run --moves -1", "--moves"),
    ("run --method splitting --sampler direct", "--sampler applies to"),
    # run: gradient descent
    ("run --gd=maybe", "--gd"),
    ("run --nogd=1", "--gd"),
    ("run --gd_steps 150 --gd_log_every 100", "--gd_steps"),
    ("run --gd_steps 0", "--gd_steps"),
    ("run --gd_log_every 0", "--gd_log_every"),
    ("run --gd_log_every 3", "--gd_log_every"),
    ("run --gd_runs 0", "--gd_runs"),
    ("run --gd_runs x", "--gd_runs"),
    ("run --gd_lr 0", "--gd_lr"),
    ("run --gd_lr nan", "--gd_lr"),
    ("run --gd_init_scale 0", "--gd_init_scale"),
    ("run --gd_init_scale -1", "--gd_init_scale"),
    ("run --gd_momentum 1.5", "--gd_momentum"),
    ("run --gd_momentum -0.1", "--gd_momentum"),
    ("run --gd_optimizer adam --gd_momentum 0.5", "--gd_momentum"),
    ("run --gd_optimizer lbfgs", "--gd_optimizer"),
    # run: where it goes, resuming, checkpoints, processes, the compilation cache
    ("run --out=", "--out"),
    ("run --out ''", "--out"),
    ("run --samples 1e3 --nogd --out {run}", "already exists"),
    ("run --samples 1e3 --nogd --out {file}", "already exists"),
    ("run --samples 1e3 --nogd --out {file}/run", "cannot create run directory"),
    ("run --resume does/not/exist", "not a gcsampler run directory"),
    ("run --resume {file}", "not a gcsampler run directory"),
    ("run --resume {sweep}", "not a gcsampler run directory"),
    ("run --resume ''", "--resume"),
    ("run --resume x --out y", "--out cannot be combined with --resume"),
    ("run --resume {run} --width 7", "--width=7"),
    ("run --resume {run} --samples 100", "--samples=100"),
    ("run --resume {run} --eps 0.5", "--eps=0.5"),
    ("run --checkpoint_every -1", "--checkpoint_every"),
    ("run --checkpoint_every inf", "--checkpoint_every"),
    ("run --checkpoint_every nan", "--checkpoint_every"),
    ("run --checkpoint_every soon", "--checkpoint_every"),
    ("run --num_processes 0 --out x", "--num_processes"),
    ("run --num_processes -1 --out x", "--num_processes"),
    ("run --num_processes x", "--num_processes"),
    ("run --num_processes 2 --out x", "--coordinator_address"),
    ("run --num_processes 2 --coordinator_address 127.0.0.1:1234", "--out is required"),
    ("run --process_id 1", "--process_id must be an integer in [0, 0]"),
    ("run --process_id -1", "--process_id"),
    ("run --num_processes 2 --process_id 2 --out x --coordinator_address 127.0.0.1:1234",
     "--process_id"),
    ("run --num_processes 2 --out x --coordinator_address nohost",
     "--coordinator_address must be HOST:PORT"),
    ("run --coordinator_address ''", "--coordinator_address"),
    ("run --distributed_timeout 0", "--distributed_timeout"),
    ("run --distributed_timeout -1", "--distributed_timeout"),
    ("run --distributed_timeout nan", "--distributed_timeout"),
    ("run --distributed_timeout soon", "--distributed_timeout"),
    ("run --method splitting --replicates 1 --num_processes 2 --out x "
     "--coordinator_address 127.0.0.1:1234", "--replicates must be at least --num_processes"),
    ("run --compilation_cache=", "--compilation_cache"),
    ("run --compilation_cache {file}/cache --out r", "--compilation_cache"),
    # sweep
    ("sweep", "--preset NAME"),
    ("sweep --preset fig99-linear", "--preset must be one of"),
    ("sweep --preset ''", "--preset"),
    ("sweep --list_presets=maybe", "--list_presets"),
    ("sweep --vary colour=1,2", "--vary must name a setting"),
    ("sweep --vary seed=1,2", "seeds come from --seeds"),
    ("sweep --vary width=5,x", "--vary width= takes integers"),
    ("sweep --vary width", "--vary width= needs a comma-separated list"),
    ("sweep --vary width=5,5", "--vary width= lists a value twice"),
    ("sweep --vary depth=2,0", "depth=0: --depth must be a positive integer"),
    ("sweep --vary ''", "--vary"),
    ("sweep --vary =1,2", "--vary"),
    ("sweep --vary width=5 --seeds 0", "--seeds"),
    ("sweep --vary width=5 --seeds x", "--seeds"),
    ("sweep --resume does/not/exist", "not a gcsampler sweep directory"),
    ("sweep --resume {run}", "not a gcsampler sweep directory"),
    ("sweep --resume {sweep} --seeds 0", "--seeds must be at least the"),
    ("sweep --resume {sweep} --width 7", "only --seeds (to add seeds) may be given with it, "
                                         "got --width"),
    ("sweep --vary width=5 --scale 1.5", "--scale"),
    ("sweep --vary width=5 --scale 0", "--scale"),
    ("sweep --vary width=5 --scale nan", "--scale"),
    ("sweep --vary width=5 --task regression", "--task"),
    ("sweep --vary width=5 --rows 0", "--rows"),
    ("sweep --vary width=5 --cols 0", "--cols"),
    ("sweep --vary width=5 --rank 6", "--rank"),
    ("sweep --vary width=5 --gt_norm 0", "--gt_norm"),
    ("sweep --vary width=5 --measurements 25", "--measurements"),
    ("sweep --vary width=5 --depth 0", "--depth"),
    ("sweep --vary depth=2 --width 0", "--width"),
    ("sweep --vary width=5 --activation swish", "--activation"),
    ("sweep --vary width=5 --leaky_slope nan", "--leaky_slope"),
    ("sweep --vary width=5 --prior cauchy", "--prior"),
    ("sweep --vary width=5 --normalize=maybe", "--normalize"),
    ("sweep --vary width=5 --eps 0", "--eps"),
    ("sweep --preset fig1-linear --eps -1", "--eps"),
    ("sweep --vary width=5 --samples 0", "--samples"),
    ("sweep --vary width=5 --sampler magic", "--sampler"),
    ("sweep --vary width=5 --batch 0", "--batch"),
    ("sweep --vary width=5 --batch 1e9 --samples 1e9 --nogd", "--batch"),
    ("sweep --vary width=5 --devices some", "--devices"),
    ("sweep --preset fig1-linear --devices 99", "--devices"),
    ("sweep --vary width=5 --log2_block 5", "--log2_block"),
    ("sweep --vary width=5 --method annealing", "--method"),
    ("sweep --vary width=5 --method splitting --particles 2", "--particles"),
    ("sweep --vary width=5 --method splitting --replicates 0", "--replicates"),
    ("sweep --vary width=5 --method splitting --move hmc", "--move"),
    ("sweep --vary width=5 --method splitting --moves 0", "--moves"),
    ("sweep --vary width=5 --gd=maybe", "--gd"),
    ("sweep --vary width=5 --gd_steps 150 --gd_log_every 100", "--gd_steps"),
    ("sweep --vary width=5 --gd_log_every 0", "--gd_log_every"),
    ("sweep --vary width=5 --gd_runs 0", "--gd_runs"),
    ("sweep --vary width=5 --gd_lr 0", "--gd_lr"),
    ("sweep --vary width=5 --gd_init_scale 0", "--gd_init_scale"),
    ("sweep --vary width=5 --gd_momentum 1", "--gd_momentum"),
    ("sweep --vary width=5 --gd_optimizer lbfgs", "--gd_optimizer"),
    ("sweep --preset fig1-linear --seed 3", "seed"),
    ("sweep --vary width=5 --problem_seed 3", "problem_seed"),
    ("sweep --vary width=5 --linear=maybe", "--linear"),
    ("sweep --vary width=5 --out=", "--out"),
    ("sweep --vary width=5 --samples 1e3 --nogd --out {sweep}", "already exists"),
    ("sweep --vary width=5 --samples 1e3 --nogd --out {file}/sweep",
     "cannot create run directory"),
    ("sweep --vary width=5 --compilation_cache=", "--compilation_cache"),
    ("sweep --vary width=5 --compilation_cache {file}/cache", "--compilation_cache"),
    # classify
    ("classify --preset nope", "--preset"),
    ("classify --preset ''", "--preset"),
    ("classify --list_presets=maybe", "--list_presets"),
    ("classify --task nope", "--task"),
    ("classify --n_train 3", "--n_train"),
    ("classify --n_train 2,x", "--n_train"),
    ("classify --n_train 0", "--n_train"),
    ("classify --n_train ''", "--n_train"),
    ("classify --task mnist --n_train 3", "--n_train"),   # balanced classes: even sizes
    ("classify --task published_kink --n_train 2", "--n_train"),
    ("classify --task published_slab --n_train 1", "--n_train"),
    ("classify --task digits --model lenet --padding VALID", "--padding"),
    ("classify --seeds 0", "--seeds"),
    ("classify --seeds x", "--seeds"),
    ("classify --first_seed -1", "--first_seed"),
    ("classify --first_seed x", "--first_seed"),
    ("classify --first_seed 4294967295", "--first_seed"),
    ("classify --model nope", "--model"),
    ("classify --model lenet", "--model lenet"),
    ("classify --depth -1", "--depth"),
    ("classify --width 0", "--width"),
    ("classify --activation nope", "--activation"),
    ("classify --hidden_biases=maybe", "--hidden_biases"),
    ("classify --nohidden_biases=1", "--hidden_biases"),
    ("classify --lenet_width 0", "--lenet_width"),
    ("classify --lenet_width nan", "--lenet_width"),
    ("classify --padding same", "--padding"),
    ("classify --prior nope", "--prior"),
    ("classify --logits nope", "--logits"),
    ("classify --bins x", "--bins"),
    ("classify --bins 0.5:0.4", "--bins"),
    ("classify --bins 0.3:0.3", "--bins"),   # (lo, hi] needs lo < hi
    ("classify --bins ''", "--bins"),
    ("classify --samples 0", "--samples"),
    ("classify --samples 1.5", "--samples"),
    ("classify --batch 0", "--batch"),
    ("classify --batch 1e9 --samples 1e9", "--batch"),
    ("classify --devices 0", "--devices"),
    ("classify --devices 99", "--devices"),
    ("classify --devices some", "--devices"),
    ("classify --log2_block 3", "--log2_block"),
    ("classify --log2_block 40", "--log2_block"),
    ("classify --baseline nope", "--baseline"),
    ("classify --baseline adam", "--baseline adam needs --baseline_protocol full_batch"),
    ("classify --baseline random_search",
     "--baseline random_search needs --baseline_protocol full_batch"),
    ("classify --baseline_protocol nope", "--baseline_protocol"),
    ("classify --baseline_protocol published --baseline adam", "--baseline_protocol full_batch"),
    ("classify --baseline_lr 0", "--baseline_lr"),
    ("classify --baseline_lr nan", "--baseline_lr"),
    ("classify --baseline_epochs 0", "--baseline_epochs"),
    ("classify --baseline_epochs x", "--baseline_epochs"),
    ("classify --baseline_batch_size 0", "--baseline_batch_size"),
    ("classify --baseline_steps 0", "--baseline_steps"),
    ("classify --baseline_runs 0", "--baseline_runs"),
    ("classify --baseline_models 0", "--baseline_models"),
    ("classify --baseline_models -1", "--baseline_models"),
    ("classify --baseline_max_runs 0", "--baseline_max_runs"),
    ("classify --baseline_max_runs 1e9", "--baseline_max_runs"),
    ("classify --baseline_init nope", "--baseline_init"),
    ("classify --out=", "--out"),
    ("classify --n_train 2 --seeds 1 --samples 1e3 --out {study}", "already exists"),
    ("classify --resume does/not/exist", "not a gcsampler classify study"),
    ("classify --resume {run}", "not a gcsampler classify study"),
    ("classify --resume {study} --seeds 3", "--seeds=3"),
    ("classify --resume {study} --logits raw", "--logits=raw"),
    ("classify --resume {study} --baseline_protocol full_batch",
     "--baseline_protocol=full_batch"),
    ("classify --resume {old_study}", "earlier gcsampler"),
    ("classify --resume {study} --out x", "--out and --preset cannot be combined"),
    ("classify --resume {study} --preset kink-mlp", "--out and --preset cannot be combined"),
    ("classify --resume {study} --devices 99", "--devices"),
    ("classify --resume ''", "--resume"),
    ("classify --checkpoint_every -1", "--checkpoint_every"),
    ("classify --num_processes 0 --out x", "--num_processes"),
    ("classify --num_processes 2 --coordinator_address 127.0.0.1:1234", "--out is required"),
    ("classify --process_id 1", "--process_id"),
    ("classify --num_processes 2 --out x --coordinator_address nohost",
     "--coordinator_address must be HOST:PORT"),
    ("classify --distributed_timeout 0", "--distributed_timeout"),
    ("classify --distributed_timeout inf", "--distributed_timeout"),
    ("classify --compilation_cache=", "--compilation_cache"),
    ("classify --compilation_cache {file}/cache", "--compilation_cache"),
    # report
    ("report", "RUN"),
    ("report does/not/exist", "not a gcsampler run directory"),
    ("report {file}", "not a gcsampler run directory"),
    ("report {sweep}", "gcsampler plot"),
    ("report {run} {run}", "unrecognized arguments"),
    ("report {run} --eps 0", "--eps"),
    ("report {run} --eps -1", "--eps"),
    ("report {run} --eps nan", "--eps"),
    ("report {run} --eps inf", "--eps"),
    ("report {run} --eps x", "--eps"),
    ("report {run} --plot --eps 0", "--eps"),
    ("report {run} --plot=maybe", "--plot"),
    ("report {run} --linear=maybe", "--linear"),
    # plot
    ("plot", "SWEEP"),
    ("plot does/not/exist", "not a gcsampler sweep directory"),
    ("plot {run}", "not a gcsampler sweep directory"),
    ("plot {sweep} --y speed", "--y"),
    ("plot {sweep} --y curves", "--y"),
    ("plot {sweep} --y gen_loss_vs_eps", "--y=gen_loss_vs_eps"),
    ("plot {sweep} --eps 0", "--eps"),
    ("plot {sweep} --eps nan", "--eps"),
    ("plot {sweep} --eps x", "--eps"),
    ("plot {sweep} --linear=maybe", "--linear"),
    # regenerate
    ("regenerate", "RUN"),
    ("regenerate does/not/exist", "--index"),
    ("regenerate does/not/exist --index 0", "not a gcsampler run directory"),
    ("regenerate {sweep} --index 0", "not a gcsampler run directory"),
    ("regenerate {run}", "--index"),
    ("regenerate {run} --index -1", "--index"),
    ("regenerate {run} --index abc", "--index"),
    ("regenerate {run} --index 1.5", "--index"),
    ("regenerate {run} --index 1e3", "--index"),
    ("regenerate {run} --index 256", "--index"),
    ("regenerate {run} --index=", "--index"),
    ("regenerate {run} --index 0 --out=", "--out"),
    ("regenerate {run} --index 0 --out {file}", "already exists"),
    # verify
    ("verify", "RUN"),
    ("verify does/not/exist", "not a gcsampler run directory"),
    ("verify {file}", "not a gcsampler run directory"),
    ("verify {sweep}", "not a gcsampler run directory"),
    ("verify {run} {run}", "unrecognized arguments"),
    ("verify {run} --repair=maybe", "--repair"),
    ("verify {run} --norepair=1", "--repair"),
    # table
    ("table", "RUN_OR_SWEEP"),
    ("table does/not/exist", "does/not/exist"),
    ("table {run} --csv=", "--csv"),
    ("table {run} --csv {file}", "--csv"),
    ("table {run} --csv {inputs}/no/such/dir/t.csv", "--csv"),
    ("table {run} --csv {inputs}", "--csv"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """A finished run and sweep, a classify study that has just started, a file, and
    flagfiles (with absolute paths, so that they read from any directory)."""
    base = tmp_path_factory.mktemp("places")
    tiny = ["--samples", "256", "--log2_block", "6", "--nogd"]
    assert cli.main(["run", *tiny, "--out", str(base / "run")]) == 0
    assert cli.main(["sweep", "--vary", "width=5", "--seeds", "1", *tiny,
                     "--out", str(base / "sweep")]) == 0
    (base / "study").mkdir()
    files.write_json(base / "study" / classify_study.STUDY_FILE,
                     dataclasses.asdict(classify_study.StudyConfig()))
    # a study made by an earlier gcsampler: its study.json has no "logits"
    (base / "old_study").mkdir()
    files.write_json(base / "old_study" / classify_study.STUDY_FILE,
                     {k: v for k, v in dataclasses.asdict(classify_study.StudyConfig()).items()
                      if k != "logits"})
    (base / "file").write_text("a file\n")
    inputs = base / "inputs"
    inputs.mkdir()
    (inputs / "not-utf8.flags").write_bytes(b"--width=5\n\xff\n")
    (inputs / "self.flags").write_text(f"--width=5\n--flagfile={inputs / 'self.flags'}\n")
    (inputs / "a.flags").write_text(f"--flagfile={inputs / 'b.flags'}\n")
    (inputs / "b.flags").write_text(f"--flagfile={inputs / 'a.flags'}\n")
    (inputs / "width0.flags").write_text("# a bad width\n--width=0\n")
    return {"base": base, "run": base / "run", "sweep": base / "sweep",
            "study": base / "study", "old_study": base / "old_study", "file": base / "file",
            "inputs": inputs}


def _snapshot(*roots):
    """Every path under ``roots``, with a hash of each file's bytes."""
    return {str(path): "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            for root in roots for path in pathlib.Path(root).rglob("*")}


class _Compiled(Exception):
    """A bad command line that got as far as compiling."""


@pytest.fixture
def nothing_compiles(monkeypatch):
    """Fail a case that compiles a G&C or splitting program: every case is refused while
    its input is checked."""
    def refuse(*args, **kwargs):
        raise _Compiled("compiled: the input was not refused while it was checked")
    monkeypatch.setattr(loop, "compiled_call", refuse)
    monkeypatch.setattr(splitting, "_programs", refuse)


@pytest.mark.parametrize("line, named", BAD_INVOCATIONS,
                         ids=[line or "(no arguments)" for line, _ in BAD_INVOCATIONS])
def test_bad_input_gives_one_line_naming_it_exit_2_and_changes_nothing(
        line, named, places, nothing_compiles, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [arg.format(**places) for arg in shlex.split(line)]
    before = _snapshot(places["base"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.count("\n") == 1 and named in err, err
    assert list(tmp_path.iterdir()) == []
    assert _snapshot(places["base"]) == before


@pytest.mark.parametrize("argv", [["run", "--samples", "10", "--nogd"],
                                  ["sweep", "--vary", "width=5", "--samples", "10", "--nogd"],
                                  ["classify", "--samples", "10", "--baseline", "none"]])
def test_a_network_too_large_for_the_device_is_one_line(argv, nothing_compiles, capsys,
                                                         tmp_path, monkeypatch):
    # As if one draw of these small networks needed more memory than the device can spare.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(devices, "memory_budget", lambda device: 1024)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert "one draw needs about" in err and list(tmp_path.iterdir()) == []


def test_runs_started_in_the_same_second_get_directories_of_their_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(files, "time", types.SimpleNamespace(strftime=lambda fmt: "20261207-1200"))
    values = cli.build_parser().parse_args(["run"]).flag_values
    made = [setup.out_dir(values, "tag") for _ in range(3)]
    assert [str(path) for path in made] == ["runs/20261207-1200-tag", "runs/20261207-1200-tag-2",
                                            "runs/20261207-1200-tag-3"]
    assert all(path.is_dir() for path in made)


def _flags_in(argv):
    """The flag names a command line gives (``--noX`` gives X)."""
    names = {arg[2:].partition("=")[0] for arg in argv if arg.startswith("--")}
    return names | {name[2:] for name in names if name.startswith("no")}


def test_every_flag_and_argument_of_every_command_has_a_bad_case():
    subcommands = cli.build_parser()._subparsers._group_actions[0].choices
    cases = [(shlex.split(line), named) for line, named in BAD_INVOCATIONS]
    missing = []
    for command, parser in subcommands.items():
        ours = [(argv, named) for argv, named in cases if argv[:1] == [command]]
        given = set().union(*(_flags_in(argv) for argv, _ in ours))
        missing += [f"{command} --{name}" for name in parser.get_default("flag_values")
                    if name not in given]
        missing += [f"{command} {action.metavar}" for action in parser._actions
                    if not action.option_strings
                    and not any(action.metavar in named for _, named in ours)]
    assert not missing, f"no bad case for: {', '.join(missing)}"
    assert len(BAD_INVOCATIONS) >= 200
