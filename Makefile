.PHONY: bench
bench:
	$(MAKE) -C bench bench
