"""mlplacement: place ML workloads on GPU pools, edge clusters or Databricks, and refuse unsigned intent."""

__version__ = "0.1.0"
