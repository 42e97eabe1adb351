"""CatBoost training on feature rows: a time-based split, early stopping, warm start, CV.

Two regressors make one model version: street hails (the demand; Poisson objective by
default, as counts are Poisson-like) and vacant taxis (the supply the guidance subtracts).
Both read the same ``FEATURES`` from :mod:`taxi_assets.features`.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import date, timedelta

import numpy as np
import polars as pl
from catboost import CatBoostRegressor, Pool

from taxi_assets import features as features_module
from taxi_assets.calendar import TOKYO_TZ_NAME
from taxi_assets.features import (
    CATEGORICAL_FEATURES,
    FEATURES,
    HORIZON,
    HORIZONS,
    KEYS,
    SUPPLY_TARGET,
    TARGET,
    feature_matrix,
)

OBJECTIVES = ("Poisson", "RMSE")


def _source_hash(*objects: object) -> str:
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(inspect.getsource(obj).encode())  # type: ignore[arg-type]
    return digest.hexdigest()[:12]


def _param(default: object, description: str, **bounds: float) -> object:
    """A hyper-parameter: its default, what it does, and its bounds (``ge``, ``gt``,
    ``le``), which the dataclass checks and the training run config exposes as is."""
    return field(default=default, metadata={"description": description, **bounds})


@dataclass(frozen=True)
class TrainingParams:
    """Hyper-parameters of one training run; recorded whole in the model's manifest.

    The one definition of them: the training run config (``TrainingConfig`` in
    ``assets/model.py``) is built from these fields, defaults, descriptions and bounds.
    """

    objective: str = _param("Poisson", f"Demand loss, one of {OBJECTIVES}.")
    # A cap, not a count: early stopping on the last day of the window picks the trees. On
    # the simulated city's 28 days the validation loss still falls 0.1% every 20 trees at 150
    # trees (a real 60 s feed used every tree of the former cap of 150), and 0.03% at 200;
    # early_stopping_min_gain stops where the fall no longer pays for its trees.
    iterations: int = _param(1000, "Demand trees at most (early stopping picks fewer).", ge=1)
    learning_rate: float = _param(0.15, "Boosting step.", gt=0, le=1)
    depth: int = _param(6, "Tree depth.", ge=1, le=16)
    l2_leaf_reg: float = _param(3.0, "L2 regularisation of the leaves.", ge=0)
    border_count: int = _param(64, "Histogram bins per numeric feature.", ge=1)
    # CTR combinations of the cell with other categories cost time and gained nothing.
    max_ctr_complexity: int = _param(1, "Categorical combinations at most.", ge=1)
    # CatBoost's default for the Poisson loss is 10 Newton steps a leaf, each a pass over
    # every row: about 45% of the training time on 28 days, for no better held-out RMSE.
    # One step was as good there, but on a small feed (test_onboarding.py: 600 taxis, 5
    # days, 50 trees) its sparsest area fell 18% behind the baselines' deviance and the
    # default rules refused the model; 3 steps pass there.
    leaf_estimation_iterations: int = _param(3, "Newton steps per leaf value.", ge=1)
    # 95% of cell-buckets see no street hail, and the time of a tree is proportional to its
    # rows. Keeping every row with a hail and a random share of the others, each weighted by
    # the inverse of that share (so the expected loss is the full data's), trains on 15% of
    # the rows; 0.1 and 0.2 gave the same held-out RMSE on 28 days (README, "Training speed").
    no_hail_row_share: float = _param(
        0.1,
        "Share of training rows without a street hail that train, each weighted 1/share "
        "(1: every row).",
        gt=0,
        le=1,
    )
    early_stopping_rounds: int = _param(
        20, "Trees without enough improvement before stopping.", ge=1
    )
    early_stopping_min_gain: float = _param(
        5e-4,
        "Stop when the last early_stopping_rounds trees lowered the best validation loss by "
        "less than this share of it (0: only when it no longer falls).",
        ge=0,
        le=1,
    )
    supply_iterations: int = _param(60, "Trees of the vacant-taxi (supply) model.", ge=1)
    random_seed: int = _param(0, "Seed of both models.")
    # Training features hold every target bucket at every horizon (3x the rows). Nearby
    # buckets carry nearly the same information, so one horizon drawn at random per cell
    # and bucket keeps training as fast as a single horizon while the model still sees each
    # horizon on a third of the rows (README, "Measured").
    horizons_per_target: int = _param(
        1,
        f"Horizons each cell and bucket trains at, drawn at random (1 to {len(HORIZONS)}: all).",
        ge=1,
        le=len(HORIZONS),
    )

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective={self.objective!r} is unknown: choose one of {OBJECTIVES}")
        for param in fields(self):
            value, bounds = getattr(self, param.name), param.metadata
            ge, gt, le = bounds.get("ge"), bounds.get("gt"), bounds.get("le")
            if (
                (ge is not None and value < ge)
                or (gt is not None and value <= gt)
                or (le is not None and value > le)
            ):
                low = f"[{ge}" if ge is not None else f"({gt}"
                allowed = f"be in {low}, {le}]" if le is not None else f"be at least {ge}"
                if gt is not None and le is None:
                    allowed = f"be above {gt}"
                raise ValueError(f"{param.name}={value!r} must {allowed}")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class TrainedModel:
    """The two regressors of a model version and what their training measured."""

    demand: CatBoostRegressor
    supply: CatBoostRegressor
    params: TrainingParams
    features: tuple[str, ...] = FEATURES
    best_iteration: int = 0
    validation_rmse: float = float("nan")
    training_rows: int = 0
    sampled_rows: int = 0  # the training rows the trees saw (no_hail_row_share)
    validation_rows: int = 0
    training_seconds: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    def predict(self, rows: pl.DataFrame) -> pl.DataFrame:
        """``rows`` with ``expected_street_hails`` and ``expected_vacant_taxis`` added."""
        supply = self.supply.predict(_pool(rows, None, _features_of(self.supply)))
        return rows.with_columns(
            expected_street_hails=pl.Series(predict_demand(self.demand, self.params, rows)),
            expected_vacant_taxis=pl.Series(np.clip(supply, 0.0, None)),
        )


def predict_demand(model: CatBoostRegressor, params: TrainingParams, rows: pl.DataFrame):
    """Expected street hails (a rate >= 0) for each row."""
    pool = _pool(rows, None, _features_of(model))
    if params.objective == "Poisson":
        # A Poisson model's raw output is the log of the rate.
        return model.predict(pool, prediction_type="Exponent")
    return np.clip(model.predict(pool), 0.0, None)


def _features_of(model: CatBoostRegressor) -> tuple[str, ...]:
    """The features a fitted regressor reads, in its order: a model trained before a
    feature was added (the horizon, say) still predicts, from the columns it knows."""
    return tuple(model.feature_names_ or FEATURES)


def _pool(
    rows: pl.DataFrame,
    target: str | None,
    features: tuple[str, ...] = FEATURES,
    weight: str | None = None,
) -> Pool:
    matrix = feature_matrix(rows).select(features).to_pandas()
    label = None if target is None else rows[target].to_numpy().astype(np.float64)
    categorical = [name for name in features if name in CATEGORICAL_FEATURES]
    weights = None if weight is None else rows[weight].to_numpy()
    return Pool(matrix, label=label, cat_features=categorical, weight=weights)


ROW_WEIGHT = "_row_weight"


def sample_no_hail_rows(rows: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """Every row with a street hail, and each row without one kept with probability
    ``share``; ``ROW_WEIGHT`` is 1 for the first and 1/share for the others, so a weighted
    loss over the sample estimates the loss over every row without bias (any target: the
    draw depends on the street hails only). Reproducible for a seed and the same rows."""
    keep = pl.Series(np.random.default_rng(seed).random(rows.height) < share)
    hail = pl.col(TARGET) > 0
    return rows.filter(hail | keep).with_columns(
        pl.when(hail).then(1.0).otherwise(1.0 / share).alias(ROW_WEIGHT)
    )


def sample_horizons(rows: pl.DataFrame, per_target: int, seed: int) -> pl.DataFrame:
    """At most ``per_target`` horizons of each cell and target bucket, drawn at random
    (reproducibly for a seed and the same rows); rows without horizons are kept whole."""
    if HORIZON not in rows.columns or per_target >= rows[HORIZON].n_unique():
        return rows
    ordered = rows.sort([*KEYS, HORIZON])
    draw = pl.Series("_draw", np.random.default_rng(seed).random(ordered.height))
    return (
        ordered.with_columns(draw)
        .filter(pl.col("_draw").rank("ordinal").over(list(KEYS)) <= per_target)
        .drop("_draw")
    )


class EarlyStopping:
    """A CatBoost callback: stop when the last ``rounds`` trees lowered the best validation
    loss by less than ``min_gain`` of it (``min_gain`` 0: CatBoost's own early stopping,
    no improvement in ``rounds`` trees), logging the loss every 50 trees as it goes."""

    def __init__(
        self, metric: str, rounds: int, min_gain: float, log: Callable[[str], None]
    ) -> None:
        self.metric, self.rounds, self.min_gain, self.log = metric, rounds, min_gain, log
        self.trees, self.reason = 0, "the cap was reached"
        self._best: list[float] = []  # best validation loss after each tree

    def after_iteration(self, info) -> bool:  # info: CatBoost's, with .metrics per eval set
        loss = info.metrics["validation"][self.metric][-1]
        self._best.append(min(loss, self._best[-1]) if self._best else loss)
        self.trees = len(self._best)
        if self.trees % 50 == 0:
            self.log(f"  tree {self.trees}: validation {self.metric} {self._best[-1]:.6f}")
        if self.trees <= self.rounds:
            return True
        before, now = self._best[-1 - self.rounds], self._best[-1]
        if before - now > self.min_gain * abs(before):
            return True
        self.reason = (
            f"the last {self.rounds} trees lowered the validation {self.metric} by "
            f"{(before - now) / abs(before):.2e} of it, under early_stopping_min_gain "
            f"{self.min_gain:g}"
        )
        return False


def window_partitions(
    loaded: dict[str, pl.LazyFrame], day: date, window_days: int
) -> dict[str, pl.LazyFrame]:
    """The stored partitions among the ``window_days`` days before ``day``, oldest first."""
    first = (day - timedelta(days=window_days)).isoformat()
    return {key: loaded[key] for key in sorted(loaded) if first <= key < day.isoformat()}


def tokyo_day(column: str = "bucket_start") -> pl.Expr:
    return pl.col(column).dt.convert_time_zone(TOKYO_TZ_NAME).dt.date()


def split_by_time(rows: pl.DataFrame, validation_days: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(training rows, validation rows): the last ``validation_days`` Tokyo days validate.

    A time-based split, not a random one: the model must predict days it has not seen, as
    it will in production.
    """
    days = sorted(rows.select(tokyo_day().unique()).to_series().to_list())
    if len(days) <= validation_days:
        raise ValueError(
            f"{len(days)} day(s) of training features ({', '.join(map(str, days))}) cannot "
            f"hold out {validation_days} validation day(s) and still train: widen the window"
        )
    first_validation_day = days[-validation_days]
    in_validation = tokyo_day() >= first_validation_day
    return rows.filter(~in_validation), rows.filter(in_validation)


def _tree_settings(params: TrainingParams) -> dict[str, object]:
    """What the demand and supply regressors share: tree shape, seed, quiet, every core."""
    return {
        "learning_rate": params.learning_rate,
        "depth": params.depth,
        "l2_leaf_reg": params.l2_leaf_reg,
        "border_count": params.border_count,
        "max_ctr_complexity": params.max_ctr_complexity,
        "leaf_estimation_iterations": params.leaf_estimation_iterations,
        "random_seed": params.random_seed,
        "allow_writing_files": False,
        "verbose": False,
        "thread_count": os.cpu_count() or 1,
    }


def train_model(
    rows: pl.DataFrame,
    params: TrainingParams,
    validation_days: int = 1,
    warm_start: TrainedModel | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> TrainedModel:
    """Fit the demand and supply regressors on ``rows`` (feature rows with both targets).

    Rows without a label (the target bucket never observed) are dropped. With
    ``warm_start``, boosting continues from that model's trees (same features required).
    """
    labelled = sample_horizons(
        rows.drop_nulls([TARGET, SUPPLY_TARGET]), params.horizons_per_target, params.random_seed
    )
    train, valid = split_by_time(labelled, validation_days)
    sampled = sample_no_hail_rows(train, params.no_hail_row_share, params.random_seed)
    if warm_start is not None and tuple(warm_start.features) != FEATURES:
        raise ValueError(
            "warm start needs the same features as this code: the production model has "
            f"{list(warm_start.features)}, this code builds {list(FEATURES)}"
        )
    drawn = (
        ""
        if params.no_hail_row_share == 1
        else f" of {train.height:,} (rows without a street hail drawn at "
        f"{params.no_hail_row_share:g} and weighted {1 / params.no_hail_row_share:g})"
    )
    log(
        f"Training on {sampled.height:,} rows{drawn}, validating on {valid.height:,} "
        f"({params.objective}, up to {params.iterations} trees)"
    )
    started = time.monotonic()
    train_pool = _pool(sampled, TARGET, weight=ROW_WEIGHT)
    valid_pool = _pool(valid, TARGET)
    demand = CatBoostRegressor(
        loss_function=params.objective,
        eval_metric="RMSE" if params.objective == "RMSE" else "Poisson",
        iterations=params.iterations,
        use_best_model=True,
        **_tree_settings(params),
    )
    stopping = EarlyStopping(
        demand.get_params()["eval_metric"],
        params.early_stopping_rounds,
        params.early_stopping_min_gain,
        log,
    )
    demand.fit(
        train_pool,
        eval_set=valid_pool,
        init_model=None if warm_start is None else warm_start.demand,
        callbacks=[stopping],
    )
    log(
        f"Demand model: {demand.tree_count_} trees kept of {stopping.trees} grown "
        f"(cap {params.iterations}; {stopping.reason})"
    )
    supply = CatBoostRegressor(
        loss_function="RMSE", iterations=params.supply_iterations, **_tree_settings(params)
    )
    supply.fit(
        _pool(sampled, SUPPLY_TARGET, weight=ROW_WEIGHT),
        eval_set=_pool(valid, SUPPLY_TARGET),
        init_model=None if warm_start is None else warm_start.supply,
    )
    model = TrainedModel(
        demand=demand,
        supply=supply,
        params=params,
        best_iteration=int(demand.get_best_iteration() or 0),
        training_rows=train.height,
        sampled_rows=sampled.height,
        validation_rows=valid.height,
        training_seconds=time.monotonic() - started,
    )
    predicted = predict_demand(demand, params, valid)
    model.validation_rmse = float(np.sqrt(np.mean((predicted - valid[TARGET].to_numpy()) ** 2)))
    log(f"Trained in {model.training_seconds:.1f}s; validation RMSE {model.validation_rmse:.4f}")
    return model


def rolling_origin_folds(days: list[date], folds: int, min_train_days: int = 2) -> list[date]:
    """The test day of each fold, oldest first: fold k trains on every day before its test
    day and tests on that day, so each fold predicts a future it has not seen.

    ``min_train_days`` counts every day before the first test day (training and early
    stopping alike).
    """
    days = sorted(days)
    if folds < 1:
        raise ValueError(f"cross_validation_folds={folds} must be at least 1")
    if len(days) < folds + min_train_days:
        raise ValueError(
            f"cross_validation_folds={folds} needs at least {folds + min_train_days} days in "
            f"the window ({min_train_days} before the first test day), it has {len(days)}"
        )
    return days[-folds:]


def model_file_bytes(model: CatBoostRegressor) -> bytes:
    """The regressor in CatBoost's own ``.cbm`` format."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.cbm")
        model.save_model(path)
        with open(path, "rb") as handle:
            return handle.read()


def regressor_from_bytes(data: bytes) -> CatBoostRegressor:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.cbm")
        with open(path, "wb") as handle:
            handle.write(data)
        return CatBoostRegressor().load_model(path)


def content_hash(*files: bytes) -> str:
    """sha256 of the model files: the identity a deployment verifies before it trusts one."""
    digest = hashlib.sha256()
    for data in files:
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


# Changes whenever the code that builds features or fits models changes; recorded with every
# model so a metric change can be traced to a code change.
CODE_VERSION = _source_hash(
    features_module,
    train_model,
    _tree_settings,
    predict_demand,
    TrainingParams,
    sample_horizons,
    sample_no_hail_rows,
    EarlyStopping,
)
