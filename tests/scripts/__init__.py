"""The scripts end to end: command lines, the README and docs, bad input, safety."""
