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

$(eval $(cargo-package))
