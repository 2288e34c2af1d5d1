/* A real xenstored for C tests: Debian's C daemon under the hypervisor shim
 * (tests/xenstored/), started afresh in a private directory by the test
 * itself and stopped by its pid only. Linked into the tests that list it
 * in the Makefile (XENSTORED_TESTS). Failures are cmocka failures. */
#ifndef XENDM_TESTS_XENSTORED_HELPER_H
#define XENDM_TESTS_XENSTORED_HELPER_H

#include <limits.h>
#include <sys/types.h>

struct xsd {
    char bin[PATH_MAX + 64];
    char shim[PATH_MAX + 64];
    char dir[64];
    char socket[96];
    pid_t pid;
};

/* Finds the daemon and the shim ($XEN_DM_XENSTORED_DIR, $XEN_DM_XSSHIM,
 * else next to the test binary in tests-bin/). NULL when both are there,
 * else why not, for the test's skip message. */
const char *xsd_locate(struct xsd *d);
/* Makes a fresh private directory for the daemon and points libxenstore
 * clients of this process at its socket (XENSTORED_PATH). */
void xsd_make_dir(struct xsd *d);
/* Starts xenstored in d->dir and waits until its socket accepts. */
void xsd_start(struct xsd *d);
/* Sends sig to the daemon this test started (SIGKILL after 5 s) and reaps
 * it. A no-op when it is not running. */
void xsd_stop(struct xsd *d, int sig);
/* Removes what the daemon left in d->dir and the directory itself, and
 * unsets XENSTORED_PATH. */
void xsd_remove_dir(struct xsd *d);

void xsd_sleep_ms(unsigned int ms);

#endif
