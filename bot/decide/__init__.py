"""The pure decision core: rules, normalisation, matching, severity, routing, plans, rendering.

Nothing in this package does I/O beyond reading rule files handed to it by path: no network,
no clock, no environment. ``tests/test_architecture.py`` enforces that.
"""
