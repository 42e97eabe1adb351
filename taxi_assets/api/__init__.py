"""The guidance API and its live map page (``taxi-assets serve``): see :mod:`.app`."""

from taxi_assets.api.app import ApiSettings, create_app, settings_for, store_from_env

__all__ = ["ApiSettings", "create_app", "settings_for", "store_from_env"]
