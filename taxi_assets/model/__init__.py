"""The model stage: training, scoring, evaluation, blessing, the registry of versions, the
deployment rules and the comparison of training runs. Pure code (Polars, CatBoost, files);
the Dagster assets that run it are in ``taxi_assets/assets/model.py``."""
