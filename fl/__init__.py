"""fl: a thin federated-learning layer on top of secagg's public API."""
