"""`python -m orchestrator.engine RUN_ID`: execute one flow run in this process."""

import os
import sys

from orchestrator.engine import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
# Leave at once: a task thread still stuck in a timed-out call must not hold the process
# open (or make the worker wait) once the run's outcome is recorded and its logs are sent.
os._exit(code)
