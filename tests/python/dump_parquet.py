"""Prints the rows of a parquet file as a JSON list, read with pandas (pyarrow engine).

Used by the Rust tests to check our tables with the readers users have, and to validate every
row against its JSON Schema. Exits non-zero when the file cannot be read."""
import json
import math
import sys

import numpy as np
import pandas as pd


def clean(v):
    if v is pd.NA:
        return None
    if isinstance(v, np.ndarray):  # a list column
        return [clean(x) for x in v.tolist()]
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):  # numpy scalar
        return clean(v.item())
    return v


def main() -> int:
    # Nullable dtypes: an integer column with nulls stays integers (numpy would make it float).
    df = pd.read_parquet(sys.argv[1], dtype_backend="numpy_nullable")
    if df.index.name is not None:  # a restored pandas index (the images parquet) becomes a column
        df = df.reset_index()
    rows = [{k: clean(v) for k, v in row.items()} for row in df.to_dict(orient="records")]
    json.dump(rows, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
