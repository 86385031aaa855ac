"""A deterministic simulation of the refresh core: many workers, shared stores, faults, virtual
time; one seed replays one run (see ``run.run`` and tests/test_simulator.py)."""
