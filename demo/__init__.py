"""`make demo`: the whole product on the embedded default, as real processes (see run.py)."""
