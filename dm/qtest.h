/* The qtest socket: QEMU's qtest line protocol, so that tests and
 * differential runs can drive any port, address or config register without a
 * guest. Every access becomes an ioreq and goes through the dispatcher. */
#ifndef XENDM_DM_QTEST_H
#define XENDM_DM_QTEST_H

#include "chardev.h"
#include "machine.h"

struct qtest;

int qtest_start(struct machine *m, const struct chardev_spec *spec,
                struct qtest **out);
void qtest_stop(struct qtest *q);

#endif
