"""serve's web view: the chain and topology pages, the trace pages, the alerts page and
``static/``."""
