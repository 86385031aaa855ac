"""The refresh core: what a worker holds (``_state``), the pure policy (``_policy``), the
driver that carries it out (``_driver``)."""
