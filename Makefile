# Outguard top-level targets for the appliance image (see docs/IMAGE.md).
#   make image ARCH=x86_64        build image/out/x86_64/images/outguard-x86_64.img
#   make run ARCH=x86_64          boot it in QEMU (SMTP on 127.0.0.1:2587, admin on :8443)
#                                 PROVISION=dir: apply dir/provision.conf, dir/users.csv
#                                 FRESH=1: start again from the built image
#                                 SMTP_PORT=, SMTPS_PORT=, ADMIN_PORT=: other host ports
#   make image-test ARCH=x86_64   boot-and-submit test (pytest tests/image)
#   make image-report             image size and boot-to-banner time per architecture
#   make bundle ARCH=x86_64       signed RAUC update bundle of the built image (VERSION=... to
#                                 override the version; keys: image/keys.sh, docs/IMAGE.md)
#   make bench                    Outguard next to Postfix (bench/README.md)
# First, once per machine (as root): image/deps.sh
ARCH ?= x86_64

.PHONY: image run image-test image-report image-clean bundle bench

image run image-test image-report image-clean bundle:
	$(MAKE) -C image $@ ARCH=$(ARCH) $(if $(PROVISION),PROVISION=$(abspath $(PROVISION))) \
		$(if $(DISK),DISK=$(abspath $(DISK))) $(if $(VERSION),VERSION=$(VERSION)) \
		$(foreach v,SMTP_PORT SMTPS_PORT ADMIN_PORT,$(if $($(v)),$(v)=$($(v))))

bench:
	$(MAKE) -C bench bench

# Fuzzing and reliability figures (fuzz/README.md, docs/RELIABILITY.md).
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
