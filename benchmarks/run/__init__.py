"""One run: train one backend on one spec and record it (harness), with its progress
bar, its closing summary and its parity check against the numpy reference."""
