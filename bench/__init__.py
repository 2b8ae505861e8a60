"""National-scale benchmarks (issue 7): `python -m bench.run [--quick]`, or `make bench [QUICK=1]`."""
