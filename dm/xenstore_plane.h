/* The machine's side of the xenstore control plane: connects to xenstored,
 * starts the dm-command protocol (xenstore/dmcommand.h) and carries its
 * requests to the machine, and the machine's news (running, devices
 * removed, serial ptys) back to xenstore. */
#ifndef XENDM_DM_XENSTORE_PLANE_H
#define XENDM_DM_XENSTORE_PLANE_H

#include "../ioreq/xen.h"
#include "machine.h"

struct xenstore_plane;

/* transport may be NULL (no domain attached: tests). */
int xenstore_plane_start(struct machine *m, struct xen_transport *transport,
                         struct xenstore_plane **out);
void xenstore_plane_stop(struct xenstore_plane *p);

#endif
