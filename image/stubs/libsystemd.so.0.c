/* A stand-in for libsystemd.so.0 in the image, for dbus-daemon only (the private bus
 * between the rauc client and its service): the appliance has no systemd, so every call
 * answers "not here" as the real library does without systemd, and the real one would
 * bring libgcrypt, liblz4, libzstd and libgpg-error (~3.5 MB) into a 20 MiB image.
 * Built by image/install-rauc.sh (image/stubs/README). */
#include <errno.h>
#include <sys/types.h>

int sd_listen_fds(int unset_environment) { (void)unset_environment; return 0; }
int sd_notify(int unset_environment, const char *state)
{
    (void)unset_environment;
    (void)state;
    return 0;
}
int sd_is_socket(int fd, int family, int type, int listening)
{
    (void)fd;
    (void)family;
    (void)type;
    (void)listening;
    return 0;
}
int sd_journal_stream_fd(const char *identifier, int priority, int level_prefix)
{
    (void)identifier;
    (void)priority;
    (void)level_prefix;
    return -ENOSYS;
}
int sd_uid_get_seats(uid_t uid, int require_active, char ***seats)
{
    (void)uid;
    (void)require_active;
    if (seats)
        *seats = 0;
    return -ENOSYS;
}
