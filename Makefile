# Convenience targets; the real work is in the scripts they call.
.PHONY: fuzz fuzz-short reliability

# Every fuzz target for FUZZ_SECONDS each (default 300).
FUZZ_SECONDS ?= 300
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

# CI's short mode: 30 s per target.
fuzz-short:
	fuzz/run.sh 30

# docs/RELIABILITY.md from fresh runs (see tests/reliability.py).
reliability:
	python3 tests/reliability.py
