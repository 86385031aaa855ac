"""The credential cascade: its sources and their reports (``_sources``, ``_store_check``,
``_credential``), the SDK's profiles (``_profiles``, ``_sdk_providers``), the long-lived token
(``_static_token``), the failover (``_failover``) and ``UnifiedAuthManager`` that runs them
(``_cascade``). Never imports the clients or the command line."""
