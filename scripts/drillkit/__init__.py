"""The parts of scripts/drill.py: a load generator, deployments to drill (one the drill starts,
or one the operator points it at), the outage scenarios, the checks after recovery and the
report."""
