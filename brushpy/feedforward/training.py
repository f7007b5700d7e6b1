"""Training the encoder end to end: context/target samples, rendered losses, Adam on the weights.

One step (DepthSplat's training process, Xu et al. 2025, section 3.3, scaled down):

1. pick a dataset (round robin) and a sample: 2 context views ``i < j`` whose index distance is in
   ``[min_gap, max_gap]`` (views in ``Scene.views`` order: a video's frames are near in index and
   in space) and M target views between them (the nearest others when there are too few);
2. the encoder predicts the splats from the context views; each target view is rendered
   (brushpy's rasterizer, black background) and compared with its image:
   ``MSE(render RGBA, (image, 1)) + (1 − SSIM)`` (the SSIM term is brushpy's fused image loss with
   ``ssim_weight = 1``), plus ``depth_weight ·`` the inverse-depth L1 of the rendered expected depth
   (:class:`brushpy.loss.DepthLoss`) where the dataset has depth maps;
3. backward through render, lift and network; gradients clipped to a global L2 norm of ``clip``;
   Adam with a linear warm-up over ``warmup`` steps and cosine decay to ``min_lr_fraction·lr``.

Outputs in ``out_dir``: ``model.safetensors`` (the weights; at the end and every checkpoint),
``checkpoint.npz`` (step, Adam state, sampler state; ``--resume`` continues from it) and
``metrics.jsonl`` (one JSON line per step: loss terms, PSNR of the targets, lr, grad norm, seconds).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..autodiff import Tape
from ..gpu import Recorder
from ..io.atomic import atomic_write
from ..loss import DepthLoss, DepthLossOp, ImageLoss, ImageLossOp, gt_depth_tensor
from ..nn import MSELossOp
from ..optim import Adam, AdamConfig
from ..render.backward import RenderOp
from ..render.forward import release_forward_state, render_forward
from .context import check_same_size, depth_range, overlap_fraction, view_sample
from .encoder import Encoder, EncoderConfig, FeedForwardInputError
from .model import load_model, save_model


@dataclass
class FFTrainConfig:
    """Options of ``brushpy feedforward train`` (see the module docstring)."""

    steps: int = 200
    resolution: tuple = (128, 128)
    num_targets: int = 2
    min_gap: int = 1
    max_gap: int = 4
    lr: float = 1e-3
    warmup: int = 20
    min_lr_fraction: float = 0.05
    clip: float = 1.0
    depth_weight: float = 0.1
    checkpoint_every: int = 50
    seed: int = 0
    encoder: EncoderConfig = field(default_factory=EncoderConfig)

    def lr_at(self, step: int) -> float:
        """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_lr_fraction · lr`` at ``steps``."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        t = min(1.0, (step - self.warmup) / max(1, self.steps - self.warmup))
        return self.lr * (self.min_lr_fraction + (1 - self.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * t)))


class ContextSampler:
    """Draws (context pair, targets) samples from datasets (see the module docstring).

    Raises:
        FeedForwardInputError: a dataset with fewer than ``2 + num_targets`` views.
    """

    def __init__(self, scenes, config: FFTrainConfig, rng: np.random.Generator):
        self.scenes, self.config, self.rng = list(scenes), config, rng
        need = 2 + config.num_targets
        for s in self.scenes:
            if len(s.views) < need:
                raise FeedForwardInputError(f"dataset {s.name!r} has {len(s.views)} views; training takes 2 context + "
                                            f"{config.num_targets} target views (--targets), {need} in all")
            check_same_size(s.views, f"the views of dataset {s.name!r}")
        self._cache: dict = {}
        self._ranges: dict = {}
        self.count = 0

    def _sample(self, k: int, i: int):
        key = (k, i)
        if key not in self._cache:
            self._cache[key] = view_sample(self.scenes[k].views[i], self.config.resolution)
        return self._cache[key]

    def draw(self):
        """``(dataset index, context samples [2], target samples [M], near, far)``."""
        c = self.config
        k = self.count % len(self.scenes)
        self.count += 1
        scene = self.scenes[k]
        n = len(scene.views)
        for _ in range(20):
            gap = int(self.rng.integers(c.min_gap, max(c.min_gap, min(c.max_gap, n - 1)) + 1))
            i = int(self.rng.integers(0, n - gap))
            j = i + gap
            between = list(range(i + 1, j))
            others = sorted((x for x in range(n) if x not in (i, j)), key=lambda x: min(abs(x - i), abs(x - j)))
            pool = between if len(between) >= c.num_targets else others[:max(c.num_targets, len(between))]
            targets = sorted(int(t) for t in self.rng.choice(pool, c.num_targets, replace=False))
            ctx = [self._sample(k, i), self._sample(k, j)]
            tg = [self._sample(k, t) for t in targets]
            if k not in self._ranges:
                self._ranges[k] = depth_range(ctx + tg, scene.init_points)
            near, far = self._ranges[k]
            if overlap_fraction(ctx[0].camera, ctx[1].camera, near, far) > 0.05:
                return k, ctx, tg, near, far
        raise FeedForwardInputError(f"dataset {scene.name!r}: no pair of views {c.min_gap}..{c.max_gap} apart "
                                    "overlaps; change --gap")


@dataclass
class StepResult:
    loss: float
    mse: float
    ssim_loss: float
    depth_loss: float | None
    psnr: float
    grad_norm: float
    lr: float


class FFTrainer:
    """Owns the encoder, Adam and the loss buffers; :meth:`step` runs one training step."""

    def __init__(self, scenes, config: FFTrainConfig, encoder: Encoder | None = None):
        self.config = config
        self.encoder = encoder or Encoder(config.encoder, seed=config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.sampler = ContextSampler(scenes, config, self.rng)
        self.adam = Adam(AdamConfig(eps=1e-8), lr=config.lr_at)
        self.image_losses = [ImageLoss(ssim_weight=1.0) for _ in range(config.num_targets)]
        self.depth_losses = [DepthLoss(config.depth_weight) for _ in range(config.num_targets)]
        self.step_count = 0

    def step(self, sample=None) -> StepResult:
        """One step on the next drawn sample, or on ``sample`` = ``(context [2], targets, near, far)``
        (:class:`~brushpy.feedforward.context.ViewSample` lists); the loss is that of the weights
        before the update."""
        c = self.config
        ctx, targets, near, far = sample if sample is not None else self.sampler.draw()[1:]
        rec, tape = Recorder(), Tape()
        out = self.encoder.forward(rec, [s.tensor() for s in ctx], [s.camera for s in ctx], near, far, tape=tape)
        seeds, mse_ops, depth_ops, renders, states = [], [], [], [], []
        for t, tg in enumerate(targets):
            use_depth = c.depth_weight > 0 and tg.depth is not None and (tg.depth > 0).any()
            state = render_forward(out.splats, tg.camera, background=(0.0, 0.0, 0.0), sh_degree=0, rec=rec,
                                   outputs="RGB+ED" if use_depth else "RGB")
            states.append(state)
            r = tape.record(RenderOp(state, out.splats))
            renders.append(r.outputs["image"])
            m = tape.record(MSELossOp(rec, r.outputs["image"], tg.target()))
            s = tape.record(ImageLossOp(self.image_losses[t], rec, r.outputs["image"], _packed(tg)))
            seeds += [m.seed, s.seed]
            mse_ops.append(m)
            if use_depth:
                d = tape.record(DepthLossOp(self.depth_losses[t], rec, r.outputs["depth"], gt_depth_tensor(tg.depth),
                                            alpha=r.outputs["image"], weight=c.depth_weight))
                seeds.append(d.seed)
                depth_ops.append(self.depth_losses[t])
        grads = tape.backward(rec, seeds)
        for st in states:
            release_forward_state(st, rec)
        rec.submit()
        gdict = grads.of(self.encoder.params)
        host = {k: v.numpy() for k, v in gdict.items()}
        norm = float(math.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in host.values())))
        if not math.isfinite(norm):
            raise FeedForwardInputError(f"step {self.step_count + 1}: the gradient became {norm}; lower --lr")
        if c.clip > 0 and norm > c.clip:
            scale = c.clip / norm
            for k, a in host.items():
                gdict[k].write(a * scale)
        rec = Recorder()
        self.adam.step(rec, self.encoder.params, gdict, self.step_count)
        rec.submit()
        mse = float(np.mean([m.outputs["loss"].numpy()[0] for m in mse_ops]))
        ssim_l = float(np.mean([fn.read_loss() for fn in self.image_losses[:len(targets)]]))
        dl = float(np.mean([fn.state.numpy()[0] for fn in depth_ops])) if depth_ops else None
        psnrs = []
        for img, tg in zip(renders, targets):
            e = float(np.mean((img.numpy()[..., :3] - tg.image) ** 2))
            psnrs.append(-10 * math.log10(max(e, 1e-10)))
        lr = c.lr_at(self.step_count)
        self.step_count += 1
        total = mse + ssim_l + (dl or 0.0)
        return StepResult(total, mse, ssim_l, dl, float(np.mean(psnrs)), norm, lr)

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, out_dir: Path, checkpoint: bool = True) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_model(out_dir / "model.safetensors", self.encoder, {"steps": self.step_count})
        if checkpoint:
            state = {f"adam/{k}": v for k, v in self.adam.state_dict().items()}
            state["step"] = np.array(self.step_count, np.int64)
            state["sampler_count"] = np.array(self.sampler.count, np.int64)
            state["rng"] = np.frombuffer(json.dumps(self.rng.bit_generator.state).encode(), np.uint8)
            with atomic_write(out_dir / "checkpoint.npz", "wb") as f:
                np.savez(f, **state)

    def resume(self, out_dir: Path) -> None:
        """Load ``model.safetensors`` and ``checkpoint.npz`` from ``out_dir``.

        Raises:
            FeedForwardInputError: no checkpoint there, or one that does not fit.
        """
        ck = out_dir / "checkpoint.npz"
        if not ck.is_file():
            raise FeedForwardInputError(f"--resume: no checkpoint {ck}; start without --resume")
        encoder, _ = load_model(out_dir / "model.safetensors")
        if encoder.config != self.encoder.config:
            raise FeedForwardInputError(f"--resume: {out_dir} holds an encoder {encoder.config}, not {self.encoder.config}")
        self.encoder = encoder
        with np.load(ck) as z:
            self.adam.load_state_dict({k[5:]: z[k] for k in z.files if k.startswith("adam/")})
            self.step_count = int(z["step"])
            self.sampler.count = int(z["sampler_count"])
            self.rng.bit_generator.state = json.loads(bytes(z["rng"]).decode())


def _packed(sample):
    from ..gpu import GpuTensor
    from ..loss.image_loss import pack_rgba8

    rgb = np.round(sample.image * 255.0).astype(np.uint8)
    return GpuTensor.from_numpy(pack_rgba8(rgb, None), f"gt {sample.name}", dtype=np.uint32)


def train(scenes, out_dir, config: FFTrainConfig, resume: bool = False, progress: bool = True,
          log=print) -> list[dict]:
    """Train for ``config.steps`` steps (from the checkpoint with ``resume``); returns the metrics rows."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    trainer = FFTrainer(scenes, config)
    if resume:
        trainer.resume(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    bar = tqdm(total=config.steps, initial=trainer.step_count, disable=not progress, unit="step")
    with open(out_dir / "metrics.jsonl", "a") as metrics:
        while trainer.step_count < config.steps:
            t0 = time.perf_counter()
            r = trainer.step()
            row = {"step": trainer.step_count, **asdict(r), "seconds": time.perf_counter() - t0}
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
            rows.append(row)
            bar.set_postfix(loss=f"{r.loss:.4f}", psnr=f"{r.psnr:.2f}")
            bar.update(1)
            if config.checkpoint_every and trainer.step_count % config.checkpoint_every == 0:
                trainer.save(out_dir)
    bar.close()
    trainer.save(out_dir)
    return rows
