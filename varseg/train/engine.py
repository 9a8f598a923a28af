"""Training loop: checkpoints, exact resume, logging, mixed precision and DDP.

:func:`train` runs one :class:`~varseg.train.config.TrainConfig` into a run folder::

    <out>/config.json          the effective configuration
    <out>/labeled_split.json   labelled item indices (semi-supervised modes)
    <out>/last.pt              checkpoint, every ``checkpoint_every`` steps and at the end
    <out>/last.pt.sha256       its SHA-256 (:mod:`varseg.train.checkpoint`), verified on load
    <out>/metrics.csv          one row every ``log_every`` steps ("step") and per epoch
    <out>/metrics.json         the same rows as a JSON list

Exact resume (``resume=True`` / ``varseg train --resume``): the checkpoint holds the model,
optimiser(s), GradScaler, step, epoch, the RNG states of torch / CUDA / NumPy / Python (one set
per process) and the running log sums; the data order is a pure function of ``(seed,
step)`` (:mod:`varseg.train.sampling`) and the learning rate a pure function of the step
(:class:`~varseg.train.builders.LRSchedule`), so on CPU an interrupted-and-resumed run ends
with exactly the weights of an uninterrupted one. A resume refuses a config that differs
from the checkpoint's in anything but :data:`~varseg.train.config.EXTENDABLE` keys.

Interruption: SIGINT (Ctrl-C) during :meth:`Trainer.fit` is deferred to the end of the
current step; the trainer then writes a consistent checkpoint and raises
:class:`TrainingInterrupted` (``varseg train`` exits 130). A second SIGINT interrupts at once,
without writing. After SIGKILL the last periodic checkpoint is intact (atomic writes).

Validation is injected: ``Trainer(..., validator=fn)`` calls ``fn(model, config, task,
device)`` (a dict of scores) at the end of the epochs ``eval_every`` selects; the engine
never imports the evaluator (:func:`varseg.train.train` passes
:class:`varseg.train.evaluate.ValidationHandler`).

Distributed training: launched by ``torchrun`` (``WORLD_SIZE > 1`` in the environment),
every process trains a :class:`~torch.nn.parallel.DistributedDataParallel` replica on its
slice of each global batch (``batch_size`` is the global batch; the slices come from
:class:`~torch.utils.data.DistributedSampler` orders), NCCL on CUDA, Gloo on CPU; rank 0
alone writes logs and checkpoints.

Mixed precision: on CUDA (``amp="auto"``) forward passes run under :func:`torch.autocast`
(float16) with a :class:`torch.amp.GradScaler`; losses are computed in float32. Off on CPU.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from varseg._atomic import atomic_path, atomic_write_text

from .builders import (
    LRSchedule,
    build_network,
    build_optimizer,
    build_train_data,
    model_constructor_config,
)
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, resolve_device, save_checkpoint
from .config import TrainConfig, resume_changes
from .sampling import (
    EpochItems,
    IndexStream,
    StepBatchSampler,
    collate_train,
    steps_for_epochs,
)
from .steps import StepState, make_step, unwrap

__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "DistContext",
    "MetricsLog",
    "Trainer",
    "TrainingInterrupted",
    "init_distributed",
    "load_checkpoint_dict",
    "resolve_device",
    "train",
]

CONFIG_NAME = "config.json"
logger = logging.getLogger(__name__)

#: Deprecated name of :func:`varseg.train.checkpoint.load_checkpoint`.
load_checkpoint_dict = load_checkpoint


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT stopped training at a step boundary; ``step`` and ``checkpoint`` say where."""

    def __init__(self, step: int, checkpoint):
        super().__init__(
            f"interrupted at step {step}; consistent checkpoint {checkpoint} "
            "written (continue with --resume)"
        )
        self.step = step
        self.checkpoint = checkpoint


class _DeferredSigint:
    """Within ``with``: the first SIGINT sets :attr:`requested`; the second raises at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.debug(
            "SIGINT: stopping at the end of this step (press Ctrl-C again to "
            "abort without a checkpoint)"
        )

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


# ------------------------------------------------------------------------------ devices
@dataclass
class DistContext:
    """Process placement: ``rank``, ``world_size``, ``local_rank``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Return True on rank 0."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Return True when more than one process takes part."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every process (no-op outside a distributed run)."""
        if self.distributed:
            dist.barrier()


def init_distributed(device_spec: str = "auto") -> DistContext:
    """Join the ``torchrun`` process group when ``WORLD_SIZE > 1`` (NCCL on CUDA, else Gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and str(device_spec).lower() != "cpu"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owns)


# ------------------------------------------------------------------------------ RNG
def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global RNG is what libraries use
    torch.manual_seed(seed)


def capture_rng() -> dict:
    """RNG states of Python, NumPy, torch (and CUDA), as ``weights_only``-loadable values."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
    state = {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["gauss"]))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# ------------------------------------------------------------------------------ logging
class Meter:
    """Running sums of the logged scalars (tensors until read, to avoid GPU syncs)."""

    def __init__(self):
        self.sums: dict = {}
        self.count = 0

    def update(self, values: dict) -> None:
        for k, v in values.items():
            v = v.detach() if torch.is_tensor(v) else torch.tensor(float(v))
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.count += 1

    def averages(self) -> dict:
        return {k: float(v) / max(1, self.count) for k, v in self.sums.items()}

    def reset(self) -> None:
        self.sums, self.count = {}, 0

    def state_dict(self) -> dict:
        return {"sums": {k: float(v) for k, v in self.sums.items()}, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.sums = {k: torch.tensor(v, dtype=torch.float64) for k, v in state["sums"].items()}
        self.count = int(state["count"])


class MetricsLog:
    """Rows of training metrics, mirrored to ``metrics.csv`` and ``metrics.json``.

    Every write rewrites both files (the column set may grow, e.g. when validation metrics
    appear), so they are always complete and consistent.
    """

    def __init__(self, out_dir, enabled: bool = True):
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.rows: list[dict] = []

    @property
    def csv_path(self) -> Path:
        """Return the path of ``metrics.csv``."""
        return self.out_dir / "metrics.csv"

    @property
    def json_path(self) -> Path:
        """Return the path of ``metrics.json``."""
        return self.out_dir / "metrics.json"

    def load(self, up_to_step: int) -> None:
        """Read existing rows (resume), dropping those after ``up_to_step``."""
        if self.json_path.is_file():
            rows = json.loads(self.json_path.read_text())
            self.rows = [r for r in rows if int(r.get("step", 0)) <= up_to_step]

    def append(self, row: dict) -> None:
        """Add a row and write the files."""
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        """Write the rows to ``metrics.json`` and ``metrics.csv`` (if enabled)."""
        if not self.enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self.json_path, json.dumps(self.rows, indent=1) + "\n")
        columns: list[str] = []
        for r in self.rows:
            columns += [k for k in r if k not in columns]
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for r in self.rows:
                writer.writerow({k: _fmt(v) for k, v in r.items()})


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


# ------------------------------------------------------------------------------ trainer
class Trainer:
    """Set up and run one training run (see the module docstring).

    Parameters
    ----------
    config : TrainConfig
    out_dir : path
        Run folder.
    resume : bool
        Continue from ``out_dir/last.pt`` (its checksum verified; ``config`` may differ from
        the checkpoint's only in :data:`~varseg.train.config.EXTENDABLE` keys).
    progress : bool or None
        tqdm progress bar; ``None`` = only when stderr is a terminal.
    callbacks : sequence of callables
        ``callback(trainer)`` after every step (after logging and checkpointing); raising
        :class:`KeyboardInterrupt` in one simulates a killed run.
    validator : callable or None
        ``validator(model, config, task, device) -> dict`` of scores, called at the end of
        the epochs selected by ``eval_every`` when ``val_split`` is set (the
        :class:`~varseg.train.evaluate.ValidationHandler` pattern). Required then.

    Raises
    ------
    FileNotFoundError
        ``resume=True`` but no checkpoint in ``out_dir``.
    ValueError
        ``resume=False`` but ``out_dir`` already holds a checkpoint; a corrupt checkpoint; a
        resume that changes what defines the run; invalid settings.
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir,
        *,
        resume: bool = False,
        progress: bool | None = None,
        callbacks=(),
        validator=None,
    ):
        self.cfg = config.validate()
        self.out_dir = Path(out_dir)
        self.resume = bool(resume)
        self.callbacks = list(callbacks)
        self.validator = validator
        if self.cfg.val_split and self.cfg.eval_every and validator is None:
            raise ValueError(
                "val_split and eval_every are set but no validator was given: "
                "use varseg.train.train, or pass validator=ValidationHandler()"
            )
        self.ckpt_path = self.out_dir / CHECKPOINT_NAME
        self._resume_from = self._read_resume_checkpoint()
        self.ctx = init_distributed(self.cfg.device)
        self.device = resolve_device(self.cfg.device, self.ctx.local_rank)
        self.amp = (self.device.type == "cuda") if self.cfg.amp == "auto" else bool(self.cfg.amp)
        if self.amp and self.device.type != "cuda":
            raise ValueError("mixed precision (amp) needs a CUDA device")
        if progress is None:
            progress = sys.stderr.isatty()
        self.progress = bool(progress) and self.ctx.is_main
        if self.cfg.batch_size % self.ctx.world_size:
            raise ValueError(
                f"batch_size {self.cfg.batch_size} (global) is not divisible by "
                f"the {self.ctx.world_size} processes"
            )
        self.local_batch = self.cfg.batch_size // self.ctx.world_size
        self._in_step = False
        self._setup()

    def _read_resume_checkpoint(self) -> dict | None:
        """Return the verified checkpoint to resume from (``None`` for a new run)."""
        if not self.resume:
            if self.ckpt_path.is_file():
                raise ValueError(
                    f"{self.out_dir} already holds a run ({self.ckpt_path}); pass "
                    "--resume to continue it or choose another --out"
                )
            return None
        if not self.ckpt_path.is_file():
            raise FileNotFoundError(
                f"cannot resume: {self.ckpt_path} does not exist (no checkpoint was written "
                f"in {self.out_dir}); start without --resume"
            )
        ck = load_checkpoint(self.ckpt_path, map_location="cpu")
        if ck.get("config"):
            bad = resume_changes(ck["config"], self.cfg.to_dict(), int(ck["step"]))
            if bad:
                saved = ck["config"]
                detail = ", ".join(
                    f"{k} {saved.get(k)!r} -> {getattr(self.cfg, k, None)!r}" for k in bad
                )
                raise ValueError(
                    f"cannot resume {self.out_dir} with a changed run definition "
                    f"({detail}); only {', '.join(EXTENDABLE_TEXT)} may change"
                )
        return ck

    # -------------------------------------------------------------- setup
    def _setup(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        if ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        ctx.barrier()
        _seed_all(cfg.seed)  # identical initial weights on every rank
        self.data = build_train_data(cfg, self.out_dir, resume=self.resume, write_split=ctx.is_main)
        self.task = self.data.task
        model = build_network(cfg, self.task).to(self.device)
        self.model_config = model_constructor_config(model)
        self.optimizer = build_optimizer(cfg, model)
        self.mode = make_step(cfg, self.task)
        self.mode.setup(self.device, self._wrap)
        self.model = self._wrap(model)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.state = StepState(
            self.model, self.optimizer, self.device, self.amp, self.scaler, cfg.grad_clip
        )
        self._setup_data_order()
        self.schedule = LRSchedule.from_config(cfg, self.total_steps, self.steps_per_epoch)
        self.step = 0
        self.log = MetricsLog(self.out_dir, enabled=ctx.is_main)
        self.step_meter, self.epoch_meter = Meter(), Meter()
        self.elapsed = 0.0
        if self._resume_from is not None:
            self._apply(self._resume_from)
            self._resume_from = None
        else:
            _seed_all(cfg.seed + 7919 * ctx.rank + 1)
        if ctx.is_main:
            cfg.save(self.out_dir / CONFIG_NAME)

    def _wrap(self, module):
        if not self.ctx.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        if not any(p.requires_grad for p in module.parameters()):
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(module, device_ids=ids)

    def _streams(self):
        """Build the ``(main, extra, aligned)`` index streams of the training items."""
        cfg, ctx, d = self.cfg, self.ctx, self.data
        paired = cfg.mode == "advsemi" or (cfg.mode == "semi" and cfg.semi_sampling == "paired")
        kw = dict(rank=ctx.rank, world_size=ctx.world_size)
        cases = getattr(d.dataset, "item_cases", None)  # volumes: keep a scan's slices together

        def stream(indices, seed):
            groups = None if cases is None else np.asarray(cases)[indices]
            return IndexStream(indices, seed=seed, groups=groups, **kw)

        if not paired:
            return stream(np.arange(len(d.dataset)), cfg.seed), None, True
        if d.labeled.size == 0:
            raise ValueError("no labelled item in the training set")
        use_unlabeled = d.unlabeled.size > 0 and (cfg.mode == "advsemi" or cfg.ms_weight > 0)
        extra = stream(d.unlabeled, cfg.seed + 1) if use_unlabeled else None
        return stream(d.labeled, cfg.seed), extra, False

    def _setup_data_order(self) -> None:
        cfg = self.cfg
        self.main_stream, self.extra_stream, self.aligned = self._streams()
        per = self.main_stream.per_epoch
        probe = StepBatchSampler(self.main_stream, self.local_batch, 0, 0, aligned=self.aligned)
        self.steps_per_epoch = probe.steps_per_epoch
        limits = []
        if cfg.epochs is not None:
            limits.append(steps_for_epochs(cfg.epochs, per, self.local_batch, self.aligned))
        if cfg.max_steps is not None:
            limits.append(int(cfg.max_steps))
        self.total_steps = max(1, min(limits))
        self._probe = probe

    def epoch_of(self, step: int) -> int:
        """Epoch that training step ``step`` (0-based) belongs to."""
        return self._probe.epoch_of(step)

    def _loader(self, start: int, end: int) -> DataLoader:
        sampler = StepBatchSampler(
            self.main_stream,
            self.local_batch,
            start,
            end,
            aligned=self.aligned,
            extra=self.extra_stream,
            extra_batch=self.local_batch,
        )
        ignore = self.task.ignore_index
        return DataLoader(
            EpochItems(self.data.dataset),
            batch_sampler=sampler,
            num_workers=self.cfg.num_workers,
            collate_fn=_Collate(ignore),
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_ignore_sigint if self.cfg.num_workers else None,
            generator=torch.Generator().manual_seed(self.cfg.seed + start),
        )

    # -------------------------------------------------------------- checkpoints
    def checkpoint_dict(self, rng) -> dict:
        """Everything needed to resume (and to rebuild the model for evaluation)."""
        return {
            "model": unwrap(self.model).state_dict(),
            "model_name": self.cfg.model,
            "model_config": self.model_config,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "mode_state": self.mode.state_dict(),
            "step": self.step,
            "epoch": self.epoch_of(self.step),
            "total_steps": self.total_steps,
            "rng": rng,
            "meters": {
                "step": self.step_meter.state_dict(),
                "epoch": self.epoch_meter.state_dict(),
            },
            "elapsed_s": self.elapsed,
            "world_size": self.ctx.world_size,
            "config": self.cfg.to_dict(),
            "task": asdict(self.task),
        }

    def save_checkpoint(self) -> Path:
        """Write ``last.pt`` and its checksum (rank 0; every rank contributes its RNG state)."""
        rng = capture_rng()
        if self.ctx.distributed:
            gathered = [None] * self.ctx.world_size
            dist.all_gather_object(gathered, rng)
        else:
            gathered = [rng]
        if self.ctx.is_main:
            save_checkpoint(self.checkpoint_dict(gathered), self.ckpt_path)
        return self.ckpt_path

    def _apply(self, ck: dict) -> None:
        """Restore the state of a verified checkpoint dict."""
        ck = _to_device(ck, self.device)
        try:
            unwrap(self.model).load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
            if self.scaler is not None and ck.get("scaler"):
                self.scaler.load_state_dict(ck["scaler"])
            if ck.get("mode_state"):
                self.mode.load_state_dict(ck["mode_state"])
        except (RuntimeError, KeyError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(
                f"checkpoint {self.ckpt_path} does not fit this run ({first})"
            ) from None
        self.step = int(ck["step"])
        self.elapsed = float(ck.get("elapsed_s", 0.0))
        meters = ck.get("meters") or {}
        if "step" in meters:
            self.step_meter.load_state_dict(meters["step"])
            self.epoch_meter.load_state_dict(meters["epoch"])
        rng = ck.get("rng") or []
        if len(rng) == self.ctx.world_size:
            restore_rng(_to_cpu(rng[self.ctx.rank]))
        else:
            _seed_all(self.cfg.seed + 7919 * self.ctx.rank + 1 + self.step)
        self.log.load(self.step)

    # -------------------------------------------------------------- loop
    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _reduce(self, values: dict) -> dict:
        if not self.ctx.distributed or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        t /= self.ctx.world_size
        return dict(zip(keys, t.tolist(), strict=True))

    def _row(self, kind: str, meter: Meter, epoch: int, extra: dict | None = None) -> dict:
        row = {"kind": kind, "step": self.step, "epoch": epoch, "lr": self._lr()}
        row.update(self._reduce(meter.averages()))
        row["elapsed_s"] = round(self.elapsed, 3)
        if extra:
            row.update(extra)
        return row

    def _validate(self) -> dict:
        out = {}
        if self.ctx.is_main:
            res = self.validator(unwrap(self.model), self.cfg, self.task, self.device)
            out = {
                f"val_{k}": v
                for k, v in res.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
        self.ctx.barrier()
        return out

    def _train_step(self, batch) -> tuple[int, float]:
        """One optimisation step and its bookkeeping; returns ``(epoch, lr factor)``."""
        self._in_step = True
        epoch = self.epoch_of(self.step)
        f = self.schedule.factor(self.step)
        for opt in [self.optimizer, *self.mode.optimizers()]:
            self.schedule.apply(opt, self.step)
        logs = self.mode(self.state, batch, self.step)
        self.step += 1
        self.step_meter.update(logs)
        self.epoch_meter.update(logs)
        self._in_step = False
        return epoch, f

    def _after_step(self, epoch: int, f: float, pbar) -> None:
        """Log rows, validation and checkpoint after a step."""
        cfg = self.cfg
        if pbar is not None:
            pbar.update(1)
        if cfg.log_every and self.step % cfg.log_every == 0:
            row = self._row("step", self.step_meter, epoch, {"lr_factor": f})
            self.step_meter.reset()
            if self.ctx.is_main:
                self.log.append(row)
            if pbar is not None:
                pbar.set_postfix(loss=f"{row.get('loss', float('nan')):.4g}")
        end_of_epoch = self.epoch_of(self.step) != epoch
        last = self.step >= self.total_steps
        if end_of_epoch or last:
            extra = {"epoch_complete": bool(end_of_epoch)}
            due = end_of_epoch and (epoch + 1) % max(1, cfg.eval_every) == 0
            if cfg.val_split and cfg.eval_every and (due or last):
                extra.update(self._validate())
            row = self._row("epoch", self.epoch_meter, epoch, extra)
            self.epoch_meter.reset()
            if self.ctx.is_main:
                self.log.append(row)
        if last or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
            self.save_checkpoint()

    def fit(self) -> dict:
        """Train until ``total_steps``; returns a summary dict.

        Raises
        ------
        TrainingInterrupted
            After a SIGINT, at the end of the step it arrived in (checkpoint written).
        """
        start = self.step
        if start >= self.total_steps:
            return self._summary()
        pbar = None
        if self.progress:
            from tqdm.auto import tqdm

            pbar = tqdm(
                total=self.total_steps,
                initial=start,
                desc=self.cfg.name,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
            )
        self.model.train()
        t_last = time.perf_counter()
        try:
            with _DeferredSigint() as sigint:
                for batch in self._loader(start, self.total_steps):
                    epoch, f = self._train_step(batch)
                    now = time.perf_counter()
                    self.elapsed += now - t_last
                    t_last = now
                    self._after_step(epoch, f, pbar)
                    for cb in self.callbacks:
                        cb(self)
                    if sigint.requested and self.step < self.total_steps:
                        self.save_checkpoint()
                        raise TrainingInterrupted(self.step, self.ckpt_path)
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:
            # a consistent state only between steps; mid-step the last checkpoint stays
            if not self.ctx.distributed and not self._in_step:
                self.save_checkpoint()
            raise
        finally:
            if pbar is not None:
                pbar.close()
        return self._summary()

    def _summary(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "checkpoint": str(self.ckpt_path),
            "step": self.step,
            "epoch": self.epoch_of(max(0, self.step - 1)),
            "total_steps": self.total_steps,
            "last_row": self.log.rows[-1] if self.log.rows else {},
        }

    def close(self) -> None:
        """Leave the process group if this trainer created it."""
        if self.ctx.owns_group and dist.is_initialized():
            dist.destroy_process_group()


class _Collate:
    """Picklable collate function (worker processes) with the dataset's ignore label."""

    def __init__(self, ignore_index: int):
        self.ignore_index = ignore_index

    def __call__(self, items):
        return collate_train(items, self.ignore_index)


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave SIGINT to the main process (which stops at a step end)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


EXTENDABLE_TEXT = ("max_steps (upward)", "epochs (upward)", "eval_every", "num_workers")


def _to_device(ck: dict, device) -> dict:
    """Tensors of the state entries of ``ck`` moved to ``device`` (RNG states stay on CPU)."""
    if torch.device(device).type == "cpu":
        return ck
    moved = {k: _map_tensors(v, device) for k, v in ck.items() if k != "rng"}
    moved["rng"] = ck.get("rng")
    return moved


def _map_tensors(obj, device):
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, device) for v in obj)
    return obj


def _to_cpu(obj):
    if torch.is_tensor(obj):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def train(
    config: TrainConfig,
    out_dir,
    *,
    resume: bool = False,
    progress: bool | None = None,
    callbacks=(),
    validator=None,
) -> dict:
    """Train ``config`` into ``out_dir`` with an injected ``validator`` (see :class:`Trainer`).

    :func:`varseg.train.train` is this function with the default validator
    (:class:`varseg.train.evaluate.ValidationHandler`).

    Parameters
    ----------
    config : TrainConfig
    out_dir : path
        Run folder (created).
    resume : bool
        Continue the run in ``out_dir`` from its ``last.pt``.
    progress : bool or None
        tqdm progress bar (default: only on a terminal).
    callbacks : sequence of callables
        Called as ``callback(trainer)`` after each step.
    validator : callable or None
        See :class:`Trainer`.

    Returns
    -------
    dict
        ``out_dir``, ``checkpoint``, ``step``, ``epoch``, ``total_steps``, ``last_row``.
    """
    trainer = Trainer(
        config, out_dir, resume=resume, progress=progress, callbacks=callbacks, validator=validator
    )
    try:
        return trainer.fit()
    finally:
        trainer.close()
