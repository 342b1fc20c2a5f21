"""serve's JSON API, one module per URL family: chains (and health), trace search, one
trace and comparison, the chain registry and alerts, ``/metrics``."""
