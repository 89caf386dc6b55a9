"""End to end: real processes (serve, demo, examples, worker), real browsers, a real cluster and Sentinel."""
