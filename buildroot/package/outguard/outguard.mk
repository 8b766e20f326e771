################################################################################
#
# outguard
#
################################################################################

# Built from the git repository that holds this br2-external tree: Buildroot's
# git download clones it (a local path works), makes the source tarball of the
# given commit and, as for every cargo package, vendors the crates into it.
# After "make source" the build needs no network. Pick another commit or tag
# with OUTGUARD_VERSION=<ref> on the make command line; to build uncommitted
# work use OUTGUARD_OVERRIDE_SRCDIR (see buildroot/README.md).
OUTGUARD_VERSION = $(shell git -C $(BR2_EXTERNAL_OUTGUARD_PATH)/.. rev-parse HEAD)
OUTGUARD_SITE = $(realpath $(BR2_EXTERNAL_OUTGUARD_PATH)/..)
OUTGUARD_SITE_METHOD = git
OUTGUARD_LICENSE = Apache-2.0
OUTGUARD_LICENSE_FILES = LICENSE

$(eval $(cargo-package))

# outguard.hash holds the license file's hash, which legal-info checks. The source
# tarball is made here from a local commit, so no fixed hash of it can exist, and
# BR2_DOWNLOAD_FORCE_CHECK_HASHES would refuse it for lack of one: its download
# step alone runs without the hash file (check-hash then only warns).
$(OUTGUARD_TARGET_SOURCE): OUTGUARD_HASH_FILES =
