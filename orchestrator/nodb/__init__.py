"""The database "backend" of a process that reaches the orchestrator over HTTP: there is none."""
