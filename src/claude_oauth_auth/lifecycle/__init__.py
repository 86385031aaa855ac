"""The refresh core: what a worker holds (``_state``), the pure policy (``_policy``), the
driver that carries it out (``_driver``), and the manager around them (``_manager``) with its
store side (``_sync``, ``_writeback``, ``_hooks``), the spend (``_spend``), the backoff shared
between processes (``_backoff``) and the refresh grant itself (``_grant``)."""
