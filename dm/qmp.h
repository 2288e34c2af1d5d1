/* The QMP server: QEMU's machine protocol as libxl speaks it
 * (xen-dm-interfaces.md §4.8). One server per monitor socket; any number of
 * clients in turn or at once (libxl opens a connection per operation).
 * JSON is parsed by json-c; malformed input, over-long messages and unknown
 * commands are answered with QEMU's error classes and the connection
 * survives. */
#ifndef XENDM_DM_QMP_H
#define XENDM_DM_QMP_H

#include "chardev.h"
#include "machine.h"

/* A message that has not completed after this many bytes is refused. */
#define QMP_MAX_MESSAGE (256u * 1024)
/* Nesting deeper than this is refused (json-c's own limit is 32). */
#define QMP_MAX_DEPTH 32

struct qmp_server;

int qmp_start(struct machine *m, const struct chardev_spec *spec,
              struct qmp_server **out);
void qmp_stop(struct qmp_server *s);

#endif
