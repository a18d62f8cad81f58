"""Tools that work on the platform from outside: model training and evaluation, and the throw-away platform
that the tests and the benchmarks start. Never imported by a service, and not part of the container image."""
