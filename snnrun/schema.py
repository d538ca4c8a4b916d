"""Structured configs (Hydra's ConfigStore): types for the top-level keys, trainer, data and logger.

``conf/config.yaml`` lists ``run_schema`` first in its defaults, so every YAML file and every
command-line override is merged onto these dataclasses at start-up: ``trainer.epochs=two``,
``seed=1.5`` or a misspelt key in a trainer/logger file fails before anything runs, with
OmegaConf's message naming the key.

- ``model`` is free-form (``Any``): model files are validated by the component registries when
  the network is built, also before any training.
- ``data`` types the keys every dataset has and stays open for dataset-specific ones (``root``,
  ``noise`` ...), which the dataset registry checks by name.
- A new top-level or trainer key needs a field here, which is the point: one place lists them.

Call ``register()`` before composing (``snnrun.config`` does on import).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclass
class TrainerConfig:
    epochs: int = 1
    batch_size: int = 1                # samples simulated in parallel while learning
    warmup_images: int = 0             # the run's first N training images in batches of warmup_batch_size
    warmup_batch_size: int = 16        # (local rules: helps short runs at large batches; README)
    eval_batch_size: int = 256         # label assignment and test, learning off
    assign_every: Any = "auto"         # samples between running-accuracy / label updates (auto: max(250, 10 batches))
    label_pass: bool = True
    checkpoint_every: int = 1000       # samples between periodic checkpoints (0: epoch ends only)
    checkpoint_min_s: float = 5.0      # ... and at least this many seconds apart (0: every checkpoint_every samples)
    cuda_graphs: bool = True           # replay each batch as a captured CUDA graph (snnrun/engine/cuda_graph.py)
    compile: Any = "auto"              # torch.compile each time step: auto (on CUDA), true, false
    cpu_kernel: Any = "auto"           # Diehl & Cook on the CPU as one compiled C loop: auto, true, false
    strategy: str = "single"           # single, or ddp: data-parallel under torchrun (snnrun/engine/data_parallel.py)
    backend: str = "auto"              # ddp's process group: auto (nccl on GPUs, else gloo), nccl, gloo
    sync_batchnorm: bool = True        # ddp on GPUs: batch norm over the global batch (SyncBatchNorm)
    diagnostics: Any = "auto"          # learning diagnostics per metrics window (snnrun/engine/diagnostics.py)
    test_every_epoch: bool = False     # also test after every epoch (summary: test_accuracy_by_epoch, its best)
    best_ties: str = "lower_loss"      # validation accuracies tie: keep the lower-loss epoch, or the later one
    represent_below: int = 0           # evaluation: a sample with fewer readout spikes is presented again
    represent_add_hz: float = 32.0     # ... at the input rate + k x this on try k (Diehl & Cook 2015:
    represent_tries: int = 3           # below 5, +32 Hz; snnrun/engine/represent.py)
    represent_learning: bool = False   # ... also while learning (as Diehl & Cook; README: it can hurt)


@dataclass
class DataConfig:
    type: str = MISSING
    shape: List[int] = MISSING
    n_inputs: int = MISSING
    n_classes: int = MISSING
    limit_train: Optional[int] = None
    limit_test: Optional[int] = None
    augment_shift: int = 0             # training images moved by up to N pixels each way (snnrun/data/augment.py)
    augment_rotate: float = 0.0        # ... turned by up to this many degrees either way
    augment_scale: Any = 0.0           # ... scaled by a factor from 1 - f to 1 + f, or from [low, high]


@dataclass
class CsvLoggerConfig:
    file: str = "metrics.csv"


@dataclass
class TensorBoardLoggerConfig:
    dir: str = "tensorboard"


@dataclass
class MlflowLoggerConfig:
    tracking_uri: Optional[str] = None  # null: a file store in <run dir>/mlruns
    experiment: str = "snnrun"
    run_name: Optional[str] = None      # null: the run dir's name


@dataclass
class WandbLoggerConfig:
    project: str = "snnrun"
    mode: str = "offline"               # offline (<run dir>/wandb, no account), online, disabled
    entity: Optional[str] = None
    name: Optional[str] = None          # null: the run dir's name


@dataclass
class LoggerConfig:
    progress: bool = True              # rich live progress bar (the console itself is always on)
    csv: Optional[CsvLoggerConfig] = None
    tensorboard: Optional[TensorBoardLoggerConfig] = None
    mlflow: Optional[MlflowLoggerConfig] = None
    wandb: Optional[WandbLoggerConfig] = None


@dataclass
class PaperConfig:
    """The published figure a recipe (conf/experiment/) should reach; `snnrun reproduce` prints it."""
    source: str = MISSING              # paper, table/figure, setting
    figure: float = MISSING            # the published value of `metric` (a fraction: 0.829)
    metric: str = "test_accuracy"      # the summary.json key it compares with
    note: Optional[str] = None         # how the paper reports it (e.g. selected on validation)
    best_epoch_figure: Optional[float] = None  # its best test epoch, where it reports one (trainer.test_every_epoch)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    model: Any = None                  # chosen with +model=<name>
    seed: int = 0
    device: str = "auto"               # auto, cpu, cuda, cuda:N
    resume: bool = False               # continue the run in hydra.run.dir from its checkpoint
    init_from: Optional[str] = None    # a run dir whose trained weights this new run starts from
    paper: Optional[PaperConfig] = None  # set by a recipe (experiment=NAME): its published figure


_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    run = OmegaConf.structured(RunConfig)
    OmegaConf.set_struct(run.data, False)  # dataset-specific keys are checked by the dataset registry
    cs.store(name="run_schema", node=run)
    _quiet_launcher_preset_warning()
    _registered = True


def _quiet_launcher_preset_warning() -> None:
    """conf/hydra/launcher/submitit_slurm.yaml shares its name with the plugin's dataclass on
    purpose: the documented ``hydra/launcher=submitit_slurm`` then gets our defaults, typed by
    the plugin's schema (Hydra 1.3's schema matching). Hydra warns that this matching is
    deprecated; a YAML ``defaults`` entry can't replace it (the plugin scanner re-imports the
    dataclass, so the two class objects differ), and snnrun pins hydra-core < 1.4."""
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_slurm' is validated against "
                                              r"ConfigStore schema")


def store_schema(name: str, node: type) -> None:
    """Store a command's own structured config (bench, probe) under ``name`` in Hydra's ConfigStore."""
    ConfigStore.instance().store(name=name, node=node)
