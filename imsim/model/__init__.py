"""The model of a PortaSwitch IM setup: scenario files in, validated objects out.

Configuration (`config`), scenarios (`scenario`, `references`, `generate`), the
simulation settings, traffic and distributions, the population of accounts, units,
and the setup journal with its replay (`setup`, `replay`). It imports nothing of
imsim outside this package but `imsim.errors`.
"""
