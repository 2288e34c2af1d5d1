/* See xenstored_helper.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "xenstored_helper.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define XENSTORED_REL "usr/lib/xen-4.17/bin/xenstored"
/* Bounds how long a broken daemon can hang a test, never a pass criterion. */
#define START_TIMEOUT_MS 10000

const char *xsd_locate(struct xsd *d)
{
    static char why[PATH_MAX + 192];
    const char *dir = getenv("XEN_DM_XENSTORED_DIR");
    const char *shim = getenv("XEN_DM_XSSHIM");
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash;

    if (n < 0)
        return "cannot find the test binary's directory";
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    if (dir)
        snprintf(d->bin, sizeof(d->bin), "%s/%s", dir, XENSTORED_REL);
    else
        snprintf(d->bin, sizeof(d->bin), "%s/xenstored/%s", self, XENSTORED_REL);
    if (shim)
        snprintf(d->shim, sizeof(d->shim), "%s", shim);
    else
        snprintf(d->shim, sizeof(d->shim), "%s/libxsshim.so", self);
    if (access(d->bin, X_OK) != 0) {
        snprintf(why, sizeof(why),
                 "no xenstored at %s (make xenstored-fetch could not fetch "
                 "it)",
                 d->bin);
        return why;
    }
    if (access(d->shim, R_OK) != 0) {
        snprintf(why, sizeof(why), "no shim at %s (make tests-bin/libxsshim.so)",
                 d->shim);
        return why;
    }
    return NULL;
}

static int connect_to(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc;

    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    close(fd);
    return rc;
}

void xsd_sleep_ms(unsigned int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Starts xenstored in d->dir and waits until its socket accepts. posix_spawn,
 * because libxenstore's reader threads may be running in this process. */
void xsd_start(struct xsd *d)
{
    char rundir[128], preload[PATH_MAX + 96], pidfile[96], log[96];
    char *argv[] = {"xenstored", "-N", "-P", "-F", pidfile, NULL};
    char *envp[256];
    posix_spawn_file_actions_t fa;
    size_t n = 0;
    int waited = 0, status;

    snprintf(rundir, sizeof(rundir), "XENSTORED_RUNDIR=%s", d->dir);
    snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", d->shim);
    snprintf(pidfile, sizeof(pidfile), "%s/pid", d->dir);
    snprintf(log, sizeof(log), "%s/log", d->dir);
    for (char **e = environ; *e && n < 250; e++) {
        if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "XENSTORED_", 10))
            envp[n++] = *e;
    }
    envp[n++] = rundir;
    envp[n++] = preload;
    envp[n] = NULL;

    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND,
                                     0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    assert_int_equal(posix_spawn(&d->pid, d->bin, &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);

    while (connect_to(d->socket) != 0) {
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            fail_msg("xenstored exited during start-up (status %d), see %s",
                     status, log);
        }
        if (waited >= START_TIMEOUT_MS)
            fail_msg("xenstored does not accept on %s", d->socket);
        xsd_sleep_ms(5);
        waited += 5;
    }
}

/* Stops only the daemon this test started, and reaps it. */
void xsd_stop(struct xsd *d, int sig)
{
    int status, waited = 0;

    if (d->pid <= 0)
        return;
    kill(d->pid, sig);
    while (waitpid(d->pid, &status, WNOHANG) != d->pid) {
        if (waited == 5000)
            kill(d->pid, SIGKILL);
        xsd_sleep_ms(5);
        waited += 5;
    }
    d->pid = 0;
}

void xsd_make_dir(struct xsd *d)
{
    snprintf(d->dir, sizeof(d->dir), "/tmp/xsdtXXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->socket, sizeof(d->socket), "%s/socket", d->dir);
    setenv("XENSTORED_PATH", d->socket, 1);
}

void xsd_remove_dir(struct xsd *d)
{
    static const char *const files[] = {"socket", "pid", "log"};
    char path[128];

    if (d->dir[0]) {
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            snprintf(path, sizeof(path), "%s/%s", d->dir, files[i]);
            unlink(path);
        }
        rmdir(d->dir);
        d->dir[0] = '\0';
    }
    unsetenv("XENSTORED_PATH");
}
