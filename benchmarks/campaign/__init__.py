"""A campaign: every contender as long-lived processes, their rounds interleaved by one
driver (driver), the suites it plans (suites) and the CPU burner of `--noise` (noise)."""
