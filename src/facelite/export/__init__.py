"""Export to deployable formats (needs the ``train`` extra)."""
