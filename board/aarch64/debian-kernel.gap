# Where Debian 12's arm64 kernel (image/, taken as Debian ships it) differs from the
# hardening fragments, and how each difference is closed at boot or why it remains. Read by
# board/common/check-kernel-config.sh --accept (post-build.sh): a new difference fails
# the build, and so does an entry here that no longer differs. docs/IMAGE.md has the table.
CONFIG_LSM                 closed: lsm=landlock,lockdown,yama on the kernel command line; Debian's other LSMs are built in but never start
CONFIG_IKCONFIG            remains: Debian ships the config as /boot/config-* in its package instead (image/out/ARCH/parts/kernel); no security effect
CONFIG_IKCONFIG_PROC       remains: as CONFIG_IKCONFIG
CONFIG_DEVMEM              closed at run time: lockdown (kernel command line) refuses opening /dev/mem; STRICT_DEVMEM and IO_STRICT_DEVMEM are on
CONFIG_DEVPORT             closed at run time: lockdown refuses opening /dev/port
CONFIG_KEXEC               closed at run time: lockdown refuses kexec_load; sysctl kernel.kexec_load_disabled=1 (KEXEC_FILE is off in this kernel)
CONFIG_HIBERNATION         closed at run time: lockdown disables hibernation
CONFIG_BPF_SYSCALL         remains (no run-time switch for root): unprivileged bpf() off (BPF_UNPRIV_DEFAULT_OFF, sysctl kernel.unprivileged_bpf_disabled=1), lockdown=confidentiality refuses kernel reads through BPF, the daemon's seccomp allowlist has no bpf()
CONFIG_USERFAULTFD         remains (no run-time switch for root): sysctl vm.unprivileged_userfaultfd=0, the daemon's seccomp allowlist has no userfaultfd()
CONFIG_PROC_KCORE          closed at run time: lockdown=confidentiality refuses /proc/kcore
CONFIG_BINFMT_MISC         closed at run time: a module in Debian's kernel, never loaded (not in the initramfs list) and rcS sets kernel.modules_disabled=1
CONFIG_MAGIC_SYSRQ         closed at run time: sysctl kernel.sysrq=0
CONFIG_ARM64_SW_TTBR0_PAN  remains (no run-time switch): Debian builds the hardware PAN (ARM64_PAN, used on ARMv8.1+ cores) but not its software emulation, so on ARMv8.0 cores (QEMU's cortex-a57, Cortex-A53/A72 boards) the kernel is not stopped from touching user memory by accident
