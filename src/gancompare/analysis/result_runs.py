"""Training the runs of a results table: each an ordinary `src/train.py` process writing into
<out>/<table>/steps<budget>/<run>, so a table is stopped and repeated at will.

- A run with a finished summary is kept; an interrupted one resumes (`trainer.resume=auto`).
- A run not started yet whose composed config equals a finished run's under <out> (another
  table's: a loss whose paper optimiser is the shared one) is copied from it, not retrained.
- Each finished run's small files (summary, configs, metrics.csv gzipped, last sample grid
  shrunk: about 60 kB) are archived under results/runs/<table>/<budget>/<run>, which is
  committed, and a run found there is restored instead of trained: a table spread over sessions
  and machines continues where the last one stopped (its checkpoints stay behind: a restored
  run reports, but does not re-evaluate).
- `batch_seeds`: the runs of one setting that differ only in `seed=` train as one
  `trainer.seeds=[...]` process in <out>/<table>/batches-steps<budget>/<setting>_s<seeds>, each
  run's directory a link to its seed's; worth it where one run leaves a GPU mostly idle.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from gancompare import PROJECT_ROOT
from gancompare.analysis.result_tables import Table
from gancompare.config import upgrade_saved
from gancompare.errors import ConfigError
from gancompare.saved import read_yaml
from gancompare.units import check_saved_units

# How a run is executed, not what it computes: configs that differ only here are the same run.
EXECUTION_KEYS = (("trainer", "threads"), ("trainer", "progress_bar"), ("logger",))
REUSED_FROM = "reused_from.txt"  # in a run copied from an identical finished run
ARCHIVE = PROJECT_ROOT / "results" / "runs"  # committed: finished runs' small files
ARCHIVED = ("summary.json", "config.yaml", ".hydra/config.yaml", ".hydra/overrides.yaml")


def budget_dir(out: Path, table: Table, steps: int | None) -> Path:
    return Path(out) / table.name / (f"steps{steps}" if steps else "full")


def run_command(run_dir: Path, overrides: Sequence[str], steps: int | None, threads: int,
                wandb: str) -> list[str]:
    return [sys.executable, str(PROJECT_ROOT / "src" / "train.py"), *overrides,
            *([f"trainer.max_steps={steps}"] if steps else []), f"trainer.threads={threads}",
            "trainer.progress_bar=false", f"logger.wandb.mode={wandb}",
            f"hydra.run.dir={run_dir}"]


def is_done(run_dir: Path) -> bool:
    """A finished or diverged run; a summary.json cut mid-write is not done (trained again)."""
    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(summary, dict) and summary.get("status") in ("finished", "diverged")


# ---- the committed archive ----

def archive_run(run_dir: Path, archived: Path) -> None:
    """A finished run's small files into the archive (metrics.csv gzipped, the last grid)."""
    if not is_done(run_dir):
        return
    archived.mkdir(parents=True, exist_ok=True)
    for name in ARCHIVED:
        if (run_dir / name).is_file():
            (archived / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_dir / name, archived / name)
    if (run_dir / "metrics.csv").is_file():
        # mtime 0: the same run archives to the same bytes (no spurious diff to commit)
        with open(run_dir / "metrics.csv", "rb") as src, \
                gzip.GzipFile(archived / "metrics.csv.gz", "wb", mtime=0) as dst:
            shutil.copyfileobj(src, dst)
    grids = sorted((run_dir / "samples").glob("epoch_*.png"))
    if grids:
        (archived / "samples").mkdir(exist_ok=True)
        small_png(grids[-1], archived / "samples" / grids[-1].name)


def small_png(source: Path, target: Path, side: int = 200, colours: int = 16) -> None:
    """The sample grid at most `side` pixels wide in a palette of `colours`: about a tenth of
    the bytes (10-25 kB), still legible in the report's mosaic."""
    from PIL import Image

    with Image.open(source) as image:
        if image.mode == "P" and max(image.size) <= side:
            # already small (a restored run archived again): quantising once more would
            # change its bytes, a spurious diff in the committed archive
            shutil.copyfile(source, target)
            return
        image = image.convert("RGB")
        image.thumbnail((side, side))
        image.quantize(colours).save(target, optimize=True)


def restore_run(archived: Path, run_dir: Path) -> None:
    """An archived run back into its run directory, for the table's report."""
    shutil.copytree(archived, run_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("metrics.csv.gz"))
    if (archived / "metrics.csv.gz").is_file():
        with gzip.open(archived / "metrics.csv.gz", "rb") as src, \
                open(run_dir / "metrics.csv", "wb") as dst:
            shutil.copyfileobj(src, dst)
    print(f"  {run_dir.name}: restored from {archived}", flush=True)


# ---- identical runs ----

def config_identity(cfg: DictConfig) -> str:
    """The composed config (interpolations unresolved) in today's keys (`upgrade_saved`, so a run
    saved before a key was renamed is still the twin of its new form) without EXECUTION_KEYS, as
    one string."""
    container = OmegaConf.to_container(upgrade_saved(cfg), resolve=False)
    for *parents, leaf in EXECUTION_KEYS:
        node = container
        for key in parents:
            node = node.get(key) or {}
        node.pop(leaf, None)
    return json.dumps(container, sort_keys=True)


def composed(overrides: Sequence[str]) -> DictConfig:
    """The config `src/train.py <overrides>` composes (what it saves as .hydra/config.yaml)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train",
                       overrides=[o for o in overrides if not o.startswith("hydra.")])


def saved_overrides(path: Path) -> list[str]:
    """A batch's saved command line (.hydra/overrides.yaml), read as data before it is run
    again: plain `key=value` strings, none of Hydra's own settings, composing a config that
    names only the project's units (`units.check_saved_units`)."""
    saved = read_yaml(path)
    plain = OmegaConf.to_container(saved, resolve=False) if isinstance(saved, ListConfig) else None
    if plain is None or not all(isinstance(o, str) for o in plain):
        raise ConfigError("run_dir", f"{path} is not a list of overrides",
                          "move the batch directory aside; the table trains it again")
    for override in plain:
        if override.lstrip("+~").startswith("hydra"):
            raise ConfigError("run_dir", f"{path} sets Hydra's own {override!r}; a saved "
                              "command line may set the run's keys only", "move the batch "
                              "directory aside; the table trains it again")
    try:
        config = composed(plain)
    except Exception as error:  # noqa: BLE001  (Hydra's composition errors have many types)
        cause = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError("run_dir", f"{path} does not compose ({cause})", "move the batch "
                          "directory aside; the table trains it again") from None
    check_saved_units(OmegaConf.to_container(config, resolve=False), path)
    return plain


def finished_twins(out: Path) -> dict[str, Path]:
    """config identity -> a finished run of any table under `out` (not itself a copy)."""
    twins: dict[str, Path] = {}
    for summary in sorted(Path(out).glob("*/*/*/summary.json")):
        run = summary.parent
        saved = run / ".hydra" / "config.yaml"
        if is_done(run) and saved.is_file() and not (run / REUSED_FROM).is_file():
            twins.setdefault(config_identity(read_yaml(saved)), run)
    return twins


def reuse(twin: Path, run_dir: Path) -> None:
    """Copy a finished run whose config equals this one's instead of training it again (the
    same config and seed train the same run); W&B's files stay with the original."""
    shutil.copytree(twin, run_dir, ignore=shutil.ignore_patterns("wandb"))
    (run_dir / REUSED_FROM).write_text(f"{twin}\n")
    print(f"  {run_dir.name}: copied from {twin}", flush=True)


# ---- the processes ----

@dataclass(frozen=True)
class Job:
    name: str  # of its log, <root>/<name>.log
    command: list[str]
    runs: tuple[Path, ...]  # the run directories it writes


def batched(todo: list[tuple[str, list[str]]], root: Path, steps: int | None, threads: int,
            wandb: str, extra: Sequence[str]) -> list[Job]:
    """One `trainer.seeds` job per setting (the overrides but `seed=`), each run's directory
    linked to its seed's. A run linked to a batch already (an interrupted one) resumes with it."""
    batches = root.parent / f"batches-{root.name}"
    jobs: dict[object, Job] = {}
    settings: dict[tuple[str, ...], list[tuple[str, int]]] = {}
    for name, overrides in todo:
        run = root / name
        started = run.resolve().parent / ".hydra" / "overrides.yaml"
        if run.is_symlink() and not started.is_file():  # its batch never started
            run.unlink()
        if run.is_symlink():  # started in a batch: resume that batch with its own overrides
            batch = run.resolve().parent
            saved = saved_overrides(started)
            command = run_command(batch, [], None, threads, wandb)
            jobs.setdefault(batch, Job(batch.name, [*command[:2], *saved, command[-1]],
                                       tuple(sorted(root / p.name for p in root.iterdir()
                                                    if p.resolve().parent == batch))))
            continue
        *setting, seed = overrides
        if not seed.startswith("seed="):
            jobs[name] = Job(name, run_command(run, [*overrides, *extra], steps, threads, wandb),
                             (run,))
            continue
        settings.setdefault(tuple(setting), []).append((name, int(seed.split("=", 1)[1])))
    for setting, runs in settings.items():
        seeds = [seed for _, seed in runs]
        label = runs[0][0].rsplit("_s", 1)[0] + "_s" + "-".join(map(str, seeds))
        batch = batches / label
        for name, seed in runs:
            (root / name).symlink_to(os.path.relpath(batch / f"seed{seed}", root))
        seeds_override = f"trainer.seeds=[{','.join(map(str, seeds))}]"
        jobs[setting] = Job(label, run_command(batch, [*setting, seeds_override, *extra], steps,
                                               threads, wandb),
                            tuple(root / name for name, _ in runs))
    return list(jobs.values())


def restore_table(table: Table, out: Path, steps: int | None,
                  archive: Path | None = ARCHIVE) -> None:
    """Every archived finished run of `table` that this machine does not have, back in place."""
    root = budget_dir(out, table, steps)
    root.mkdir(parents=True, exist_ok=True)
    archived = budget_dir(archive, table, steps) if archive else None
    for name in table.runs:
        if archived and not is_done(root / name) and is_done(archived / name) \
                and not (root / name).is_symlink():
            restore_run(archived / name, root / name)


def train_table(table: Table, out: Path, steps: int | None, jobs: int = 2, threads: int = 1,
                wandb: str = "disabled", extra: Sequence[str] = (),
                batch_seeds: bool = False, archive: Path | None = ARCHIVE) -> dict[str, float]:
    """Train every run of `table` that has no finished summary (nor an archived one); returns
    job -> wall seconds of the jobs run now. Each job is a separate `src/train.py` process with
    its log beside; each finished run is archived (`archive=None`: not)."""
    root = budget_dir(out, table, steps)
    archived = budget_dir(archive, table, steps) if archive else None
    restore_table(table, out, steps, archive)
    if steps and table.evaluations:
        extra = [f"eval.every_steps={max(1, steps // table.evaluations)}", *extra]
    todo = [(name, o) for name, o in table.runs.items() if not is_done(root / name)]
    twins = finished_twins(out) if todo else {}
    for name, overrides in list(todo):
        command = run_command(root / name, [*overrides, *extra], steps, threads, wandb)
        twin = twins.get(config_identity(composed(command[2:])))
        if twin is not None and not (root / name).exists() and not (root / name).is_symlink():
            reuse(twin, root / name)
            if archived:  # another machine has no twin to copy from: the archive must hold it
                archive_run(root / name, archived / name)
            todo.remove((name, overrides))
    planned = (batched(todo, root, steps, threads, wandb, extra) if batch_seeds else
               [Job(name, run_command(root / name, [*overrides, *extra], steps, threads, wandb),
                    (root / name,)) for name, overrides in todo])
    walls: dict[str, float] = {}

    def one(job: Job) -> None:
        started = time.perf_counter()
        with open(root / f"{job.name}.log", "w") as log:
            subprocess.run(job.command, stdout=log, stderr=subprocess.STDOUT, check=False)
        walls[job.name] = time.perf_counter() - started
        for run in job.runs if archived else ():
            archive_run(run, archived / run.name)
        done = sum(is_done(run) for run in job.runs)
        print(f"  {job.name}: {done} of {len(job.runs)} runs done in {walls[job.name]:.0f} s",
              flush=True)

    print(f"{table.name}: {len(todo)} of {len(table.runs)} runs to train into {root}"
          + (f" as {len(planned)} processes" if batch_seeds else ""), flush=True)
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        list(pool.map(one, planned))
    return walls
