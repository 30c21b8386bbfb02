"""kopf registrations only: each handler delegates to orchestration in one call."""
