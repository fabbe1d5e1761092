"""`make bench`: the benchmarks (see run.py); they start components and the platform through deploy.local."""
