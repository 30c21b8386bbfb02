"""Orchestration between kopf handlers and the pure core: caches, the admission step, the placement loop."""
