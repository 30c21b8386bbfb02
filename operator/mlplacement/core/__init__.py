"""Pure logic: no kopf, kubernetes, databricks or prometheus imports, no I/O, the clock passed in."""
