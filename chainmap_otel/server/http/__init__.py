"""HTTP plumbing shared by serve's surfaces: bearer tokens and hosts, timed listeners, the
bounded read pool."""
