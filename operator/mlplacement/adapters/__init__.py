"""The imperative shell: one module per outside system (files, Kubernetes, edge clusters, Databricks)."""
