"""A study's configuration and data → the static training program (`train.TrainSpec`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vmaptrain import augment, models, optim, poke, tta
from vmaptrain.config import StudyConfig, StudyError
from vmaptrain.data import Dataset, normalize
from vmaptrain.models import ModelError, make_model
from vmaptrain.train import TrainSpec


def build_spec(config: StudyConfig, data: Dataset) -> TrainSpec:
    n = len(data.y_train)
    if config.batch_size > n:
        raise StudyError(f"batch_size {config.batch_size} is larger than the training set ({n} examples)")
    steps_per_epoch = n // config.batch_size
    total = max(config.total_steps(steps_per_epoch), 1)
    try:
        train_images = None
        if getattr(models.REGISTRY.get(config.model), "needs_training_images", False):
            # Only the images the whitening uses are normalised (not the whole training set).
            train_images = normalize(data.x_train[models.whitening_sample(n)], data.mean, data.std)
        model = make_model(config.model, data.num_classes, config.width, train_images, config.init)
        aug = augment.AugmentConfig(
            flip=config.flip, translate=config.translate, translate_mode=config.translate_mode, cutout=config.cutout
        )
        aug.check_image_size(*data.x_train.shape[1:3])
        tta.check(config.tta, *data.x_train.shape[1:3])
        schedule = optim.Schedule(
            config.schedule,
            total,
            int(round(config.warmup_epochs * steps_per_epoch)),
            start=config.schedule_start,
            end=config.schedule_end,
            cycles=config.schedule_cycles,
        )
    except (ModelError, ValueError) as err:
        raise StudyError(str(err)) from None
    poke_path = None
    if any(poke_step >= 0 for poke_step in config.per_run("poke_step")):
        poke_path = config.poke_param or model.default_poke_param
    limited = tuple(
        (path, int(round(epochs * steps_per_epoch)))
        for path, epochs in sorted(getattr(model, "train_only_epochs", {}).items())
    )
    return TrainSpec(
        model=model,
        optimizer=config.optimizer,
        schedule=schedule,
        batch_size=config.batch_size,
        steps_per_epoch=steps_per_epoch,
        augment=aug,
        poke_path=poke_path,
        norm_lr_scale=config.norm_lr_scale,
        norm_wd_scale=config.norm_wd_scale,
        limited=limited,
        lookahead=config.lookahead,
        tta=config.tta,
    )


def check_model(spec: TrainSpec, data: Dataset) -> int:
    """Refuse a model that cannot take the data's images or a poke path it does not have; the
    poked parameter's size (0 without a poke)."""
    sample = jnp.zeros((1,) + data.x_train.shape[1:], jnp.float32)
    try:
        shapes = jax.eval_shape(lambda: spec.model.init(jax.random.key(0), sample, train=False))
    except ValueError as err:
        raise StudyError(f"model '{spec.model.__class__.__name__}' cannot take {data.name} images: {err}") from None
    if spec.poke_path is not None:
        try:
            return poke.check_path(shapes["params"], spec.poke_path)
        except ValueError as err:
            raise StudyError(str(err)) from None
    return 0


def variables_shape(spec: TrainSpec, image_shape, num_runs: int):
    """Abstract stacked {params, batch_stats} of `num_runs` runs (what `--keep_weights` saves)."""
    x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
    one = jax.eval_shape(lambda: spec.model.init(jax.random.key(0), x, train=False))
    one = {"params": one["params"], "batch_stats": one.get("batch_stats", {})}
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct((num_runs,) + a.shape, a.dtype), one)
