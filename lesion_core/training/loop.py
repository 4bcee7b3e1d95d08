"""Training engine: one JSON config in, one run folder out.

run_training() trains in this process and reports only through the run folder (status.json
every second or so, history.jsonl per epoch and phase, train.log, best.pt/last.pt), so a
page, the CLI or a test can follow it the same way. launch() starts the same training as a
detached `python -m lesion_core train --run-dir ...` process and returns at once.

Reproducibility: every epoch reseeds random, numpy, torch and the DataLoader generator from
(seed, epoch). A resumed run restarts from the last completed epoch with the same seeds, so
it ends exactly where an uninterrupted run would have (on CPU; GPU kernels may differ
slightly), without storing RNG states in the checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

import lesion_core
from lesion_core import metrics, models, ranks, runs
from lesion_core.core import is_int
from lesion_core.errors import TrainingError, require
from lesion_core.evaluation import bootstrap, patient
from lesion_core.evaluation.review import split_review
from lesion_core.i18n import N_, concat
from lesion_core.inference.model import forward
from lesion_core.inference.predictions import write_predictions
from lesion_core.inference.score import predict_loader
from lesion_core.settings.device import resolve_amp, resolve_device
from lesion_core.settings.loaders import class_weights, epoch_seed, load_data, make_loader, seed_everything
from lesion_core.settings.schema import image_size
from lesion_core.training.ops import (
    WeightAverage,
    backward_step,
    check_finite,
    dtype_name,
    recalibrate_batchnorm,
    save_torch,
    set_train_mode,
)
from lesion_core.training.optim import make_optimizer, make_scheduler, resume_schedule
from lesion_core.inference import prior as patient_prior

STATUS_EVERY_S = 1.0  # status.json refresh period while training: live enough, cheap enough


# Keys of a history line that measure speed, not learning (excluded when comparing runs).
TIMING_KEYS = ("time_s", "images_per_s", "iter_time_s", "data_time_s", "time")


def versions() -> dict:
    """Versions that matter for reproducing a run (git commit when this is a checkout)."""
    commit = None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "lesion_core": lesion_core.__version__,
            "numpy": np.__version__, "git_commit": commit}


class StopRequested(Exception):
    """A stop file or signal arrived; the current epoch is abandoned."""


class Trainer:
    """Trains one run folder; see run_training(). on_batch(status) and on_log(line) let the
    CLI draw progress bars; everything else is reported through the run folder."""

    def __init__(self, run_dir: Path, config: dict, on_batch: Callable | None = None,
                 on_log: Callable | None = None):
        self.run_dir = Path(run_dir)
        self.config = config
        self.on_batch = on_batch
        self.on_log = on_log
        self.stop_signal = False
        self.iter_time = {}  # phase -> mean seconds per batch, for the ETA
        self.calibration_s = None  # seconds of the last BatchNorm recalibration, for the ETA
        self.n_test_batches = 0  # batches of the final evaluation on test, for the ETA
        self.completed = 0  # last epoch saved in last.pt
        self.status = {}

    # -- reporting

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        runs.append_line(self.run_dir / "train.log", line)
        if self.on_log:
            self.on_log(line)

    def set_status(self, **fields) -> None:
        self.status = runs.write_status(self.run_dir, **fields)

    def _should_stop(self) -> bool:
        return self.stop_signal or runs.stop_requested(self.run_dir)

    def _on_signal(self, signum, frame) -> None:
        if self.stop_signal and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user really wants out
        self.stop_signal = True

    # -- setup

    def setup(self, resuming: bool) -> int:
        """Load data, build everything, restore last.pt when resuming; return the first epoch."""
        cfg = self.config
        self.device = resolve_device(cfg["device"])
        if self.device.type == "cuda" and self.device.index is not None and not ranks.launched():
            # pinned-memory threads and bf16 support checks use the current GPU, not GPU 0
            # (under torchrun, ranks.init made the local rank's GPU current)
            torch.cuda.set_device(self.device)
        self.amp_dtype = resolve_amp(cfg["amp"], self.device)
        self.set_status(message=N_("loading the dataset"))
        self._load_data()
        self.set_status(message=N_("building {model}").format(model=cfg["model"]["name"]))
        weights_info = self._build_model()
        cfg["resolved"] = {
            "device": str(self.device), "amp": dtype_name(self.amp_dtype), "channels_last": self.channels_last,
            "image_size": image_size(cfg), "class_weights": _tolist(self.criterion.weight),
            "weights": weights_info, "threads": torch.get_num_threads(), "versions": versions()}
        runs.atomic_write_json(self.run_dir / "config.json", cfg)
        frozen = ", backbone frozen (head only)" if cfg["model"]["freeze_backbone"] else ""
        self.log(f"model {cfg['model']['name']} ({(weights_info or {}).get('source', '?')} weights{frozen}) on {self.device}, "
                 f"amp {cfg['resolved']['amp']}, {image_size(cfg)} px, batch {cfg['batch_size']}, "
                 f"{cfg['optim']['optimizer']} lr {cfg['optim']['lr']}, {cfg['scheduler']['name']} schedule")
        self.best = None
        self.completed = self._restore() if resuming else 0
        return self.completed + 1

    def _load_data(self) -> None:
        """The dataset and its loaders; records the exact split in the config."""
        cfg = self.config
        self.data = load_data(cfg)
        self.class_names = list(self.data.class_names)
        cfg["data"]["split"] = self.data.to_spec()
        cfg["data"]["class_names"] = self.class_names
        try:
            cfg["headline_metric"] = metrics.headline_metric(self.class_names, cfg["headline_metric"])
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        self.log("data: " + "; ".join(f"{s} {sum(c.values())} ({', '.join(f'{k} {v}' for k, v in c.items())})"
                                      for s, c in self.data.report.counts.items()))
        require(len(self.data.split("train")) > 0,
                 N_("the training split is empty: this dataset has no training images"))
        require(len(self.data.split("val")) > 0,
                 N_("the validation split is empty: use more data or a larger val_fraction"))
        self.generator = torch.Generator()
        self.loaders = {
            "train": make_loader(self.data.split("train"), cfg["augment"], cfg, True, self.generator),
            "val": make_loader(self.data.split("val"), cfg["eval_augment"], cfg, False),
        }
        self.n_test_batches = math.ceil(len(self.data.split("test")) / cfg["batch_size"])
        train_records = self.data.split("train")
        n_calibration = min(cfg["bn_recalibration_images"], len(train_records))
        if n_calibration > 1 and n_calibration % cfg["batch_size"] == 1:
            n_calibration -= 1  # BatchNorm in train mode cannot take a batch of one (1x1 feature maps)
        if n_calibration:  # evenly spaced training images, through the eval transforms
            picked = [train_records[i * len(train_records) // n_calibration] for i in range(n_calibration)]
            # Not sharded: every process recomputes the same BatchNorm statistics from all of them.
            self.loaders["calibration"] = make_loader(picked, cfg["eval_augment"], cfg, False, shard=False)

    def _build_model(self) -> dict | None:
        """Model, loss, optimiser, scheduler and grad scaler; returns what weights were loaded."""
        cfg, mcfg = self.config, self.config["model"]
        seed_everything(cfg["seed"])  # the new head's initialisation draws from torch's RNG
        self.model = models.build_model(mcfg["name"], len(self.class_names), weights=mcfg["weights"],
                                        weights_path=mcfg["weights_path"], freeze_backbone=mcfg["freeze_backbone"])
        self.model.to(self.device)
        self.channels_last = cfg["channels_last"] and self.device.type in ("cpu", "cuda")
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # What training batches go through (DistributedTrainer wraps it in DDP); evaluation
        # and checkpoints use self.model itself, so state_dict keys never change.
        self.train_model = torch.compile(self.model) if cfg["compile"] else self.model
        # What validation, best.pt and the final predictions use: the averaged weights when ema is on.
        self.average = WeightAverage(self.model, cfg["ema"]) if cfg["ema"] else None
        self.eval_model = self.average.module if self.average else self.model
        weights = class_weights(cfg, [r.label for r in self.data.split("train")], len(self.class_names))
        self.criterion = nn.CrossEntropyLoss(weight=weights.to(self.device) if weights is not None else None,
                                             label_smoothing=float(cfg["optim"]["label_smoothing"]))
        self.optimizer = make_optimizer(cfg, self.model.parameters())
        self.scheduler = make_scheduler(cfg, self.optimizer, len(self.loaders["train"]))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        return getattr(self.model, "weights_info", None)

    def _restore(self) -> int:
        """Load last.pt (if any) into model/optimizer/scheduler; return its epoch (0 if none)."""
        path = self.run_dir / "last.pt"
        rows, skipped = runs.read_history_checked(self.run_dir)
        if skipped:  # rewritten below without them
            self.log(f"history.jsonl: {skipped} unreadable line(s) skipped and dropped")
        if not path.exists():
            self.log("no completed epoch to resume from: starting from epoch 1")
            runs.atomic_write_text(self.run_dir / "history.jsonl", "")
            return 0
        ckpt = models.load_checkpoint(path)
        require(isinstance(ckpt.get("model"), dict) and isinstance(ckpt.get("optimizer"), dict)
                 and is_int(ckpt.get("epoch")), N_("{path} is not a checkpoint the trainer wrote (no model, "
                 "optimizer and epoch); delete it to restart the run from epoch 1").format(path=path))
        models.load_weights(self.model, ckpt["model"], path)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        resume_schedule(self.scheduler, self.optimizer, int(ckpt["epoch"]) * len(self.loaders["train"]))
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.average:
            require("ema" in ckpt, N_("{path} has no weight average (the run began without ema); "
                                       "delete it to restart the run from epoch 1").format(path=path))
            self.average.load_state_dict(ckpt["ema"], path)
        self.best = ckpt.get("best")
        epoch = int(ckpt["epoch"])
        # Lines of the interrupted epoch are replayed, so drop them.
        kept = [row for row in rows if row["epoch"] <= epoch]
        runs.atomic_write_text(self.run_dir / "history.jsonl", "".join(_json_line(r) for r in kept))
        self.log(f"resuming after epoch {epoch} of {self.config['epochs']}")
        return epoch

    # -- the loop

    def run(self, resuming: bool) -> None:
        cfg = self.config
        started = self.status.get("started") if resuming else None
        self.set_status(state="running", message=N_("starting"), pid=os.getpid(), started=started or time.time(),
                        epochs=cfg["epochs"], epoch=0, phase=None, iteration=0, n_iters=0)
        first = self.setup(resuming)
        for epoch in range(first, cfg["epochs"] + 1):
            self._epoch(epoch)
        self._finish()

    def _epoch(self, epoch: int) -> None:
        seed = epoch_seed(self.config["seed"], epoch)
        seed_everything(seed)
        self.generator.manual_seed(seed)
        if self.config["freeze_epochs"] and not self.config["model"]["freeze_backbone"]:
            head_only = epoch <= self.config["freeze_epochs"]
            models.train_head_only(self.model, models.MODELS[self.config["model"]["name"]].head, head_only)
        lr = self.optimizer.param_groups[0]["lr"]
        train = self._phase("train", epoch, lr)
        if "calibration" in self.loaders:
            self.set_status(phase="calibrate", message=N_("epoch {epoch}: recomputing BatchNorm statistics").format(
                                epoch=epoch),
                            eta_s=self._eta("calibrate", epoch, 0))
            started = time.perf_counter()
            recalibrate_batchnorm(self.eval_model, self.loaders["calibration"], self.device, self.amp_dtype,
                                  self.channels_last)
            self.calibration_s = time.perf_counter() - started
        val = self._phase("val", epoch, lr)
        improved = self._update_best(epoch, val)
        save_torch(self.run_dir / "last.pt", {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            **({"ema": self.average.state_dict()} if self.average else {}),
            "epoch": epoch, "best": self.best, "seed": self.config["seed"]})
        self.completed = epoch
        self.log(f"epoch {epoch}/{self.config['epochs']}: train loss {train['loss']:.4f} acc {train['accuracy']:.3f}"
                 f" | val loss {val['loss']:.4f} acc {val['accuracy']:.3f} mean AUC {_fmt(val['mean_auc'])}"
                 f" ({', '.join(f'{k} {_fmt(v)}' for k, v in val['auc'].items())})"
                 f" | {train['images_per_s']:.1f} img/s{' *best*' if improved else ''}")
        self.set_status(best=self.best, message=N_("epoch {epoch} done").format(epoch=epoch))

    def _update_best(self, epoch: int, val: dict) -> bool:
        """Save best.pt when the val headline metric rises (val loss falls, when it is undefined)."""
        headline = self.config["headline_metric"]
        if val.get(headline) is not None:
            metric, value, better = f"val_{headline}", val[headline], lambda new, old: new > old
        else:
            metric, value, better = "val_loss", val["loss"], lambda new, old: new < old
        if self.best is not None and self.best["metric"] == metric and not better(value, self.best["value"]):
            return False
        self.best = {"metric": metric, "value": value, "epoch": epoch}
        save_torch(self.run_dir / "best.pt", {"model": self.eval_model.state_dict(), "epoch": epoch,
                                               "metric": metric, "value": value,
                                               "class_names": self.class_names, "model_name": self.config["model"]["name"]})
        return True

    def _phase(self, phase: str, epoch: int, lr: float) -> dict:
        """One pass over a split; appends its line to history.jsonl and returns it."""
        training = phase == "train"
        loader = self.loaders[phase]
        set_train_mode(self.model if training else self.eval_model, training)
        n_iters = len(loader)
        # Loss and probabilities stay on the device until the phase ends (or a status is due):
        # reading them per batch would make the host wait for the device every batch.
        loss_sum, labels, probs, ids = torch.zeros((), device=self.device), [], [], []
        start = last_report = time.perf_counter()
        data_time = 0.0
        batch_end = start
        self.set_status(phase=phase, epoch=epoch, iteration=0, n_iters=n_iters,
                        message=N_("epoch {epoch} {phase}").format(epoch=epoch, phase=phase))
        with torch.set_grad_enabled(training):
            for iteration, (images, targets, batch_ids) in enumerate(loader, 1):
                data_time += time.perf_counter() - batch_end
                loss, batch_probs = self._step(images, targets, training, epoch, iteration)
                loss_sum += loss.detach() * len(targets)
                labels.append(targets)
                probs.append(batch_probs)
                ids += batch_ids
                batch_end = time.perf_counter()
                elapsed = batch_end - start
                self.iter_time[phase] = elapsed / iteration
                progress = {"phase": phase, "epoch": epoch, "iteration": iteration, "n_iters": n_iters,
                            "images_per_s": sum(len(t) for t in labels) / elapsed, "eta_s": self._eta(phase, epoch, iteration)}
                if self.on_batch:
                    self.on_batch(progress)
                if batch_end - last_report >= STATUS_EVERY_S or iteration == 1:
                    check_finite(loss_sum, epoch, iteration)
                    self.set_status(**progress)
                    last_report = batch_end
                if self._should_stop():
                    raise StopRequested(N_("epoch {epoch} {phase}, batch {iteration}/{n_iters}").format(
                        epoch=epoch, phase=phase, iteration=iteration, n_iters=n_iters))
        check_finite(loss_sum, epoch, n_iters)
        seconds = time.perf_counter() - start
        loss_total, labels, probs = self._merge(float(loss_sum), torch.cat(labels), torch.cat(probs).float().cpu(), ids)
        return self._phase_summary(phase, epoch, lr, loss_total, labels, probs, seconds, data_time, n_iters)

    def _merge(self, loss_total: float, labels: torch.Tensor, probs: torch.Tensor, ids: list[str]):
        """(summed loss, labels, probs) over every process; alone, what it is given."""
        return loss_total, labels, probs

    def _step(self, images, targets, training: bool, epoch: int, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward (and backward when training) one batch; returns (mean loss, softmax (B, C)), both
        on the device: the caller reads them when it needs to, not every batch."""
        model = self.train_model if training else self.eval_model
        logits = forward(model, images, self.device, self.amp_dtype, self.channels_last)
        loss = self.criterion(logits, targets.to(self.device, non_blocking=True))
        if training:
            backward_step(self.optimizer, self.scaler, loss)
            self.scheduler.step()
            if self.average:
                self.average.update(self.model)
        return loss, torch.softmax(logits.detach(), dim=1)

    def _phase_summary(self, phase, epoch, lr, loss_total, labels, probs, seconds, data_time, n_iters) -> dict:
        labels = labels.numpy()
        probs = probs.numpy()
        result = metrics.compute_metrics(labels, probs, self.class_names, self.config["headline_metric"])
        row = metrics.to_jsonable({
            "epoch": epoch, "phase": phase, "loss": loss_total / len(labels), "accuracy": result["accuracy"],
            "auc": dict(zip(self.class_names, result["auc"])), "mean_auc": result["mean_auc"], "lr": lr,
            **{k: result[k] for k in ("macro_auc", "balanced_accuracy", "isic2017_mean_auc", "headline") if k in result},
            "n_images": len(labels), "time_s": seconds, "images_per_s": len(labels) / seconds,
            "iter_time_s": seconds / n_iters, "data_time_s": data_time, "time": time.time()})
        runs.append_line(self.run_dir / "history.jsonl", _json_line(row).rstrip("\n"))
        return row

    def _eta(self, phase: str, epoch: int, iteration: int) -> float:
        """Seconds left: remaining batches times the measured (or guessed) time per batch, with
        each epoch's BatchNorm recalibration and the final evaluation of the best weights on
        val and test (forward passes, timed like validation batches until measured)."""
        t_train = self.iter_time.get("train", 0.0)
        t_val = self.iter_time.get("val", t_train / 3)
        n_train, n_val = len(self.loaders["train"]), len(self.loaders["val"])
        calibrate = (self.calibration_s if self.calibration_s is not None
                     else len(self.loaders.get("calibration", ())) * t_val)
        after_train = calibrate + n_val * t_val
        if phase == "train":
            left = (n_train - iteration) * t_train + after_train
        elif phase == "calibrate":
            left = after_train
        else:
            left = (n_val - iteration) * t_val
        final = (n_val + self.n_test_batches) * t_val
        return left + (self.config["epochs"] - epoch) * (n_train * t_train + after_train) + final

    # -- the end

    def _merge_predictions(self, records, ids, labels, probs):
        """(ids, labels, probs) of every record, each once; alone, what it is given."""
        return ids, labels, probs

    def _fit_patient_prior(self) -> dict | None:
        """The metadata prior of the training split (evaluation.patient), when the config asks
        for one and enough training images have an age or a sex; None otherwise (logged)."""
        if not self.config["metadata"]:
            return None
        records = self.data.split("train")
        metas = [r.meta for r in records]
        prior = patient.fit(metas, [r.label for r in records], len(self.class_names))
        if prior is None:
            self.log(f"patient metadata: {patient_prior.known_share(metas):.0%} of the training "
                     f"images have an age or a sex (at least {patient.MIN_KNOWN:.0%} needed): the image alone")
        return prior

    def _with_patient_prior(self, prior: dict, split: str, records, ids, labels, probs) -> np.ndarray:
        """probs combined with each image's metadata; on val, the weight is fitted first and
        patient_model.json written (val comes before test)."""
        metas = patient_prior.metas_of(records, ids)
        if split == "val":
            prior["weight"] = patient.fit_weight(prior, probs, labels, metas)
            patient.save(self.run_dir, prior)
            before = metrics.compute_metrics(labels, probs, self.class_names)["mean_auc"]
            after = metrics.compute_metrics(labels, patient_prior.combine(probs, prior, metas), self.class_names)["mean_auc"]
            self.log(f"patient metadata: prior from {prior['n']} training images ({prior['known']:.0%} with age or "
                     f"sex; {', '.join(prior['features'])}), weight {prior['weight']:g} fitted on val "
                     f"(val mean AUC {_fmt(before)} with the image alone, {_fmt(after)} combined)")
        return patient_prior.combine(probs, prior, metas)

    def _finish(self) -> None:
        """Predictions and metrics of the best weights on val and test; state finished."""
        self.set_status(phase="evaluate", message=N_("evaluating the best model on val and test"))
        best = models.load_checkpoint(self.run_dir / "best.pt")
        models.load_weights(self.model, best["model"], self.run_dir / "best.pt")
        summary = {}
        prior = self._fit_patient_prior()
        for split in ("val", "test"):
            records = self.data.split(split)
            if not records:
                self.log(f"no {split} images: no predictions_{split}.csv")
                continue
            loader = (self.loaders["val"] if split == "val"
                      else make_loader(records, self.config["eval_augment"], self.config, False))
            ids, labels, probs = self._merge_predictions(
                records, *predict_loader(self.model, loader, self.device, self.amp_dtype, self.channels_last,
                                         tta=self.config["tta"]))
            if prior is not None:
                probs = self._with_patient_prior(prior, split, records, ids, labels, probs)
            meta = {r.id: r.meta | ({"group": r.group} if r.group else {}) for r in records}
            result = metrics.compute_metrics(labels, probs, self.class_names, self.config["headline_metric"])
            review = split_review(self.run_dir, split, labels, probs, self.class_names)  # fits calibration on val
            write_predictions(self.run_dir / f"predictions_{split}.csv", ids, labels, probs, self.class_names, meta,
                              review["calibration"]["temperature"])
            intervals = bootstrap.metric_intervals(labels, probs, self.class_names)  # 95% CIs, seeded
            runs.atomic_write_json(self.run_dir / f"metrics_{split}.json",
                                   metrics.metrics_summary(result, ids) | review | {"intervals": intervals})
            headline = result["headline"]
            summary[split] = {"mean_auc": result["mean_auc"], "accuracy": result["accuracy"], headline: result[headline]}
            self.log(f"best model (epoch {self.best['epoch']}) on {split}: mean AUC {_fmt(result['mean_auc'])}, "
                     f"accuracy {result['accuracy']:.3f}")
        # "finished: " names the state, which the pages show already; the rest is the message.
        # The metric by its name on the pages ("ISIC 2017 mean AUC (melanoma, keratosis)"), not
        # its key, with the 3 decimals the pages show.
        key = self.best["metric"].removeprefix("val_")
        best = {"metric": metrics.HEADLINE_METRICS.get(key, key), "value": _fmt(self.best["value"], 3),
                "epoch": self.best["epoch"]}
        message = concat("finished: ", (
            N_("best validation {metric}: {value} at epoch {epoch}; test mean AUC {auc}").format(
                **best, auc=_fmt(summary["test"]["mean_auc"], 3)) if "test" in summary
            else N_("best validation {metric}: {value} at epoch {epoch}").format(**best)))
        self.set_status(state="finished", phase=None, message=message, eta_s=0, final=metrics.to_jsonable(summary))
        self.log(message)


def _tolist(tensor: torch.Tensor | None) -> list | None:
    return tensor.tolist() if tensor is not None else None


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _json_line(row: dict) -> str:
    return json.dumps(metrics.to_jsonable(row), allow_nan=False) + "\n"


