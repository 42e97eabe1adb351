"""Data validation of Polars frames after TensorFlow Data Validation: statistics, schema, drift."""
