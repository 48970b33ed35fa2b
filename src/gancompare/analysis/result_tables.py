"""The tables of the results page: which runs (overrides of `src/train.py`) each table trains,
how it groups them, which metrics it shows and the published figures it stands beside.
`results.py` trains and reports them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

LOSSES = ["minimax", "non-saturating", "wasserstein", "wgan-gp", "lsgan", "hinge"]
SCENARIOS = ["stable", "mode-collapse", "convergence-failure", "aggressive-adam"]

@dataclass(frozen=True)
class Table:
    name: str
    title: str
    runs: dict[str, list[str]]  # run name -> overrides of src/train.py
    by: list[str]  # run-table columns that make the groups
    metrics: list[str]  # METRICS keys shown
    default_steps: int | None  # budget of one run (trainer.max_steps); None: the config's own
    published_steps: int | None = None  # the published budget, for the stated fraction
    published: dict[str, dict[str, str]] = field(default_factory=dict)  # group -> heading -> value
    notes: str = ""  # protocol and the known differences from the published setting
    variants: dict[int, str] = field(default_factory=dict)  # model.pack -> the paper's name
    evaluations: int | None = None  # per run, at least (eval.every_steps = budget / this): curves
    # for runs of a few epochs

    def with_columns(self, runs_table: pd.DataFrame) -> pd.DataFrame:
        """The runs in the table's order (so its groups are too), with a `setting` column (the
        run's name in the table, seed aside) and a `variant` column (the paper's name of each
        packing degree)."""
        names = runs_table["run"].str.rsplit("/", n=1).str[-1]
        order = names.map({name: i for i, name in enumerate(self.runs)})
        runs_table = runs_table.iloc[order.argsort(kind="stable")]
        names = names.loc[runs_table.index]
        runs_table = runs_table.assign(setting=names.str.replace(r"_s\d+$", "", regex=True))
        if not self.variants or "config.model.pack" not in runs_table:
            return runs_table
        packs = runs_table["config.model.pack"].fillna(1).astype(int)
        return runs_table.assign(variant=packs.map(self.variants).fillna(packs.astype(str)))


def seeds_of(runs: dict[str, list[str]], seeds: Sequence[int]) -> dict[str, list[str]]:
    return {f"{name}_s{seed}": [*overrides, f"seed={seed}"]
            for name, overrides in runs.items() for seed in seeds}


def pacgan_table1(seeds: Sequence[int], name: str = "pacgan-table1", steps: int = 4000,
                  title: str = "PacGAN Table 1: 2-D mixtures, GAN vs PacGAN2 vs PacGAN4") -> Table:
    runs = {f"{data}_pack{pack}": [f"experiment=pacgan-{data}", f"model.pack={pack}"]
            for data in ("ring8", "grid25") for pack in (1, 2, 4)}
    return Table(
        name, title, seeds_of(runs, seeds), by=["data", "variant"],
        variants={1: "GAN", 2: "PacGAN2", 4: "PacGAN4"},
        metrics=["eval.mixture_modes", "eval.mixture_high_quality", "eval.mixture_reverse_kl"],
        default_steps=steps, published_steps=400_000,
        published={  # Lin et al. 2018, Table 1 (10 trials, mean ± s.e.)
            group: {"modes": modes, "high quality %": quality, "reverse KL": kl}
            for group, modes, quality, kl in (
                ("ring8 · GAN", "6.3 ± 0.5", "98.2 ± 0.2", "0.45 ± 0.09"),
                ("ring8 · PacGAN2", "7.9 ± 0.1", "95.6 ± 2.0", "0.07 ± 0.03"),
                ("ring8 · PacGAN4", "7.8 ± 0.1", "98.5 ± 0.1", "0.12 ± 0.03"),
                ("grid25 · GAN", "17.3 ± 0.8", "94.8 ± 0.7", "0.70 ± 0.07"),
                ("grid25 · PacGAN2", "23.8 ± 0.5", "91.3 ± 0.8", "0.13 ± 0.02"),
                ("grid25 · PacGAN4", "24.8 ± 0.2", "93.6 ± 0.6", "0.04 ± 0.01"))},
        notes="Protocol: `experiment=pacgan-ring8` / `pacgan-grid25` with `model.pack=1, 2, 4` "
              "(PacGAN's code: pacgan-mlp, Adam 1e-4 / 0.8, simultaneous updates, batch 100 "
              "packs, metrics on 2,500 samples of a fixed latent set; fp32, as theirs). "
              "Published: Lin et al. 2018, Table 1, after 400k steps.")


def stacked_mnist(seeds: Sequence[int]) -> Table:
    runs = {f"pack{pack}": ["experiment=stacked-mnist-veegan", f"model.pack={pack}"]
            for pack in (1, 2)}
    return Table(
        "stacked-mnist", "Stacked MNIST, VEEGAN setting: DCGAN vs PacDCGAN2",
        seeds_of(runs, seeds), by=["variant"], variants={1: "DCGAN", 2: "PacDCGAN2"},
        metrics=["eval.stacked_modes_mnist_cnn_x3", "eval.stacked_kl_mnist_cnn_x3"],
        default_steps=1000, published_steps=None, evaluations=4,
        published={  # Lin et al. 2018, Table 3 (VEEGAN's setting)
            "DCGAN": {"modes": "99.0", "KL": "3.40"},
            "PacDCGAN2": {"modes": "1000.0 ± 0.0", "KL": "0.06 ± 0.01"},
        },
        notes="Protocol: `experiment=stacked-mnist-veegan` (PacGAN's "
              "stacked_MNIST_experiments/VEEGAN_experiment: DCGAN with 64 base filters, z of 100 "
              "from U(-1, 1), Adam 2e-4 / 0.5, batch 64, two G updates per D update, 128,000 "
              "stacked images; 26,000 samples classified per channel by the project's MNIST "
              "classifier). Published: Lin et al. 2018, Table 3 (DCGAN from VEEGAN's paper).")


def losses(name: str, data: str, seeds: Sequence[int], steps: int | None,
           shared_optimizer: bool) -> Table:
    extra = [f"data={data}"] + (["optimizer=dcgan"] if shared_optimizer else [])
    runs = {loss: [f"loss={loss}", *extra] for loss in LOSSES}
    space = "fashion_cnn" if data == "fashion" else "mnist_cnn"
    optimiser = ("one shared optimiser (`optimizer=dcgan`: Adam 2e-4 / 0.5, one D step)"
                 if shared_optimizer else "each loss with its paper's optimiser and D steps")
    return Table(
        name, f"The six losses on {data}, {optimiser.split(' (')[0]}", seeds_of(runs, seeds),
        by=["loss"], metrics=[f"eval.fid_{space}", f"eval.coverage_{space}"],
        default_steps=steps,
        notes=f"The baseline setting (dcgan28, separate real and fake batches, batch 128) on "
              f"data={data}, {optimiser}.")


def scenarios(seeds: Sequence[int]) -> Table:
    return Table(
        "scenarios", "The four failure scenarios", seeds_of(
            {s: [f"experiment={s}"] for s in SCENARIOS}, seeds), by=["setting"],
        metrics=["eval.fid_mnist_cnn", "eval.coverage_mnist_cnn"], default_steps=None,
        notes="SPEC's scenarios (`experiment=<scenario>`), 450 steps each, judged by the "
              "project's verdict rules (tuned on seed 0).")


def mixture_losses(seeds: Sequence[int], steps: int) -> Table:
    runs = {f"{data}_{loss}": [f"experiment=pacgan-{data}", f"loss={loss}"]
            for data in ("ring8", "grid25") for loss in LOSSES}
    return Table(
        "losses-mixtures", "The six losses on ring8 and grid25, PacGAN's protocol",
        seeds_of(runs, seeds), by=["data", "loss"],
        metrics=["eval.mixture_modes", "eval.mixture_high_quality", "eval.mixture_reverse_kl"],
        default_steps=steps, published_steps=400_000,
        notes="`experiment=pacgan-<data> loss=<loss>`: PacGAN's networks, optimiser and "
              "simultaneous updates for every loss (each loss's own D steps do not apply there); "
              "fp32.")


# The stabilisers as an axis: each replaces the loss file's own regularisers (WGAN's clipping);
# "none" is the loss as its file defines it, so those rows are today's one-point tables.
STABILISER_LOSSES = ["non-saturating", "lsgan", "wasserstein", "hinge", "rpgan"]
STABILISERS = {"none": [], "sn": ["model.d_norm=spectral", "regularizer=[]"],
               "r1": ["regularizer=[r1]"], "gp": ["regularizer=[gp]"],
               "r1r2": ["regularizer=[r1,r2]"]}


def seed_major(runs: dict[str, list[str]], seeds: Sequence[int]) -> dict[str, list[str]]:
    """seeds_of, every setting's first seed first: a table stopped half way has whole rows."""
    return {f"{name}_s{seed}": [*overrides, f"seed={seed}"]
            for seed in seeds for name, overrides in runs.items()}


def stabilisers_mnist8(seeds: Sequence[int]) -> Table:
    runs = {f"{loss}_{stab}": [f"loss={loss}", "optimizer=dcgan", *STABILISERS[stab]]
            for loss in STABILISER_LOSSES for stab in ("none", "sn", "r1", "gp")}
    return Table(
        "stabilisers-mnist8", "Stabilisers × losses on mnist8, one shared optimiser",
        seed_major(runs, seeds), by=["setting"],
        metrics=["eval.fid_mnist_cnn", "eval.coverage_mnist_cnn"], default_steps=None,
        notes="The baseline setting (dcgan28, batch 128, 450 steps) with one shared optimiser "
              "(`optimizer=dcgan`: Adam 2e-4 / 0.5, one D step) for every cell. Rows: "
              "`<loss>_<stabiliser>`; `none` is the loss as its file defines it (WGAN with its "
              "weight clipping), `sn` spectral norm in D (`model.d_norm=spectral`, no clipping), "
              "`r1` R1 with gamma 1 ((gamma/2) E||grad D(x)||^2 on real samples), `gp` WGAN-GP's "
              "penalty with lambda 10, each in place of the loss file's regularisers. D "
              "sees separate real and fake batches (the baseline's hacks) except rpgan, whose "
              "loss compares both in one term (hacks=[]). Neither gamma nor lambda is tuned "
              "here: one point each, the papers' lambda and a middle gamma.")


def stabilisers_mixtures(seeds: Sequence[int], steps: int) -> Table:
    runs = {f"{data}_{loss}_{stab}": [f"experiment=pacgan-{data}", f"loss={loss}",
                                      *STABILISERS[stab]]
            for data in ("ring8", "grid25") for loss in STABILISER_LOSSES
            for stab in ("none", "r1r2", "sn")}
    return Table(
        "stabilisers-mixtures", "Stabilisers × losses on ring8 and grid25, PacGAN's protocol",
        seed_major(runs, seeds), by=["setting"],
        metrics=["eval.mixture_modes", "eval.mixture_high_quality", "eval.mixture_reverse_kl"],
        default_steps=steps, published_steps=400_000,
        notes="`experiment=pacgan-<data> loss=<loss>` (PacGAN's networks, optimiser and "
              "simultaneous updates for every loss) with no added stabiliser, R1 + R2 (gamma 1 "
              "each) or spectral norm in D; fp32.")


def stabilisers_stacked(seeds: Sequence[int]) -> Table:
    runs = {"dcgan": ["experiment=stacked-mnist-veegan"],
            "pacdcgan2": ["experiment=stacked-mnist-veegan", "model.pack=2"],
            "rpgan_r1r2": ["experiment=stacked-mnist-veegan", "loss=rpgan", "optimizer=veegan",
                           "regularizer=[r1,r2]"]}
    return Table(
        "stabilisers-stacked", "Stacked MNIST, VEEGAN setting: RpGAN + R1 + R2 beside DCGAN "
        "and PacDCGAN2", seed_major(runs, seeds), by=["setting"],
        metrics=["eval.stacked_modes_mnist_cnn_x3", "eval.stacked_kl_mnist_cnn_x3"],
        default_steps=1000, evaluations=4,
        published={"rpgan_r1r2": {"modes": "1000 (R3GAN's network)", "KL": "0.029"},
                   "pacdcgan2": {"modes": "1000.0 ± 0.0", "KL": "0.06 ± 0.01"},
                   "dcgan": {"modes": "99.0", "KL": "3.40"}},
        notes="`experiment=stacked-mnist-veegan` as in the Stacked MNIST table; rpgan_r1r2 is "
              "R3GAN's objective (RpGAN + R1 + R2, gamma 1 each) on the same DCGAN and "
              "optimiser (its D's batch norm becomes layer norm under the penalties). "
              "Published: Lin et al. 2018, Table 3 for DCGAN / PacDCGAN2; Huang et al. 2024 for "
              "R3GAN, with its own, larger network and budget.")


def tables(seeds: Sequence[int] | None = None) -> dict[str, Table]:
    """Every table by name; `seeds` overrides each table's own trials."""
    def s(default: int) -> list[int]:
        return list(seeds) if seeds is not None else list(range(default))

    return {t.name: t for t in (
        pacgan_table1(s(10)),
        # Table 1's variants for 5 times its budget, on fewer seeds: where its curves go
        pacgan_table1(s(3), "pacgan-trend", 20_000,
                      "PacGAN Table 1 at 5 % of the budget: where the curves go"),
        stacked_mnist(s(3)),
        losses("losses-mnist8", "mnist8", s(3), None, shared_optimizer=False),
        losses("losses-mnist8-shared", "mnist8", s(3), None, shared_optimizer=True),
        losses("losses-fashion", "fashion", s(3), 1000, shared_optimizer=True),
        scenarios(s(3)), mixture_losses(s(3), 4000),
        stabilisers_mnist8(s(3)), stabilisers_mixtures(s(3), 4000), stabilisers_stacked(s(3)))}
