"""Infrastructure shared by the gateway and the services: settings, database, Redis, errors and
envelopes, identity, the inter-service HTTP client, logging, metrics and health."""
