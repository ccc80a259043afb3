"""The harness, command line, presets and report of rnnbench."""
