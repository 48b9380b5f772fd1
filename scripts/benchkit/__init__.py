"""Parts of scripts/bench_anchor.py: packets, the naive design, claimx runs, the ceiling."""
