"""The ``pancakes`` command: reading and writing files, the report, statistics, run.json."""
