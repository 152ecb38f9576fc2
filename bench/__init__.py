"""skuforge benchmarks: they print figures; tests never assert on wall-clock time. Run `python -m bench`."""
