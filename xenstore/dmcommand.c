#include "dmcommand.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"

TRACE_POINT(trace_dm_command, "dm_command");

/* Commands libxl issues one at a time; a queue this deep only fills if a
 * peer floods the key, and then the newest is refused with a log line. */
#define DM_COMMAND_QUEUE 64
#define DM_COMMAND_MAX 32
#define DM_PARAMETER_MAX 256

enum in_flight { IDLE, REMOVING, SAVED };

struct queued_command {
    char command[DM_COMMAND_MAX];
    char parameter[DM_PARAMETER_MAX];
};

struct dm_command {
    struct xsw *xs;
    struct dm_command_config cfg;
    struct dm_command_ops ops;
    struct xsw_watch *w_command, *w_logdirty, *w_dir, *w_cpu;
    struct queued_command queue[DM_COMMAND_QUEUE];
    unsigned head, len;
    enum in_flight busy;
    struct pci_host_addr removing; /* while busy == REMOVING */
};

/* --- parsing ----------------------------------------------------------- */

static int parse_flag(const char *v, size_t len, bool *out)
{
    if (len == 1 && (v[0] == '0' || v[0] == '1')) {
        *out = v[0] == '1';
        return 0;
    }
    return -EINVAL;
}

int pci_insert_request_parse(const char *s, struct pci_insert_request *out)
{
    const char *p;

    memset(out, 0, sizeof(*out));
    if (pci_host_addr_parse(s, &out->host, &p) < 0)
        return -EINVAL;
    if (*p == '@') {
        unsigned v;
        size_t n = strspn(p + 1, "0123456789abcdefABCDEF");
        char digits[3] = "";

        if (n == 0 || n > 2)
            return -EINVAL;
        memcpy(digits, p + 1, n);
        v = (unsigned)strtoul(digits, NULL, 16);
        out->has_vdevfn = true;
        out->vdevfn = (uint8_t)v;
        p += 1 + n;
    }
    while (*p) {
        const char *key, *val;
        size_t klen, vlen;

        if (*p != ',')
            return -EINVAL;
        key = p + 1;
        val = strchr(key, '=');
        if (!val)
            return -EINVAL;
        klen = (size_t)(val - key);
        val++;
        vlen = strcspn(val, ",");
        if ((klen == 12 && !strncmp(key, "msitranslate", 12) &&
             parse_flag(val, vlen, &out->msitranslate) == 0) ||
            (klen == 10 && !strncmp(key, "power_mgmt", 10) &&
             parse_flag(val, vlen, &out->power_mgmt) == 0) ||
            (klen == 10 && !strncmp(key, "permissive", 10) &&
             parse_flag(val, vlen, &out->permissive) == 0)) {
            p = val + vlen;
            continue;
        }
        return -EINVAL;
    }
    return 0;
}

/* --- replies ----------------------------------------------------------- */

int dm_command_set_state(struct dm_command *dc, const char *state)
{
    xsw_path_t path;

    xsw_dm_path(dc->xs, path, sizeof(path), "state");
    trace(trace_dm_command, "state = %s", state);
    return xsw_write(dc->xs, path, state);
}

static void set_parameter(struct dm_command *dc, const char *value)
{
    xsw_path_t path;

    xsw_dm_path(dc->xs, path, sizeof(path), "parameter");
    xsw_write(dc->xs, path, value);
}

int dm_command_publish_serial(struct dm_command *dc, unsigned index,
                              const char *pty)
{
    xsw_path_t path;

    xsw_dom_path(dc->xs, path, sizeof(path), "serial/%u/tty", index);
    return xsw_write(dc->xs, path, pty);
}

/* --- commands ---------------------------------------------------------- */

static void run_queue(struct dm_command *dc);

static void do_pci_insert(struct dm_command *dc, const char *param)
{
    struct pci_insert_request req;
    char err[128] = "", reply[16];
    int devfn;

    if (pci_insert_request_parse(param, &req) < 0) {
        log_ratelimited(LOG_WARN, "xenstore: pci-ins with malformed parameter "
                        "'%.64s'", param);
        set_parameter(dc, "wrong bdf or vdevfn");
        dm_command_set_state(dc, "pci-insert-failed");
        return;
    }
    devfn = dc->ops.pci_insert(dc->ops.opaque, &req, err, sizeof(err));
    if (devfn < 0) {
        log_warn("xenstore: pci-ins %.12s failed: %s", param, err);
        set_parameter(dc, err[0] ? err : "no free hotplug devfn");
        dm_command_set_state(dc, "pci-insert-failed");
        return;
    }
    snprintf(reply, sizeof(reply), "0x%02x", devfn);
    set_parameter(dc, reply);
    dm_command_set_state(dc, "pci-inserted");
}

static void do_pci_remove(struct dm_command *dc, const char *param)
{
    struct pci_host_addr host;
    char err[128] = "";
    int rc;

    if (pci_host_addr_parse(param, &host, NULL) < 0) {
        log_ratelimited(LOG_WARN, "xenstore: pci-rem with malformed parameter "
                        "'%.64s'", param);
        set_parameter(dc, "wrong bdf");
        dm_command_set_state(dc, "pci-remove-failed");
        return;
    }
    rc = dc->ops.pci_remove(dc->ops.opaque, &host, err, sizeof(err));
    if (rc == -ENODEV) {
        /* Nothing of that name is attached: removing it is already done. */
        log_info("xenstore: pci-rem %s: not attached", param);
        dm_command_set_state(dc, "pci-removed");
        return;
    }
    if (rc < 0) {
        log_warn("xenstore: pci-rem %s refused: %s", param, err);
        set_parameter(dc, err);
        dm_command_set_state(dc, "pci-remove-failed");
        return;
    }
    /* Complete once the guest ejects (or a reset flushes the request). */
    dc->busy = REMOVING;
    dc->removing = host;
}

static void do_save(struct dm_command *dc)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/qemu-save.%u", dc->cfg.lib_dir,
             dc->cfg.domid);
    if (dc->ops.save(dc->ops.opaque, path) < 0) {
        log_err("xenstore: save to %s failed; not reporting paused", path);
        return;
    }
    dc->busy = SAVED;
    dm_command_set_state(dc, "paused");
}

static void do_continue(struct dm_command *dc)
{
    if (dc->busy == SAVED)
        dc->ops.resume(dc->ops.opaque);
    dc->busy = IDLE;
    dm_command_set_state(dc, "running");
}

static void execute(struct dm_command *dc, const struct queued_command *c)
{
    log_info("xenstore: command '%s'%s%s", c->command, c->parameter[0] ? " " : "",
             c->parameter);
    if (!strcmp(c->command, "pci-ins"))
        do_pci_insert(dc, c->parameter);
    else if (!strcmp(c->command, "pci-rem"))
        do_pci_remove(dc, c->parameter);
    else if (!strcmp(c->command, "save"))
        do_save(dc);
    else if (!strcmp(c->command, "continue"))
        do_continue(dc);
    else
        log_ratelimited(LOG_WARN, "xenstore: unknown command '%.32s' ignored",
                        c->command);
}

static void run_queue(struct dm_command *dc)
{
    while (dc->len) {
        struct queued_command c = dc->queue[dc->head];

        /* While saved only "continue" may run (the guest is stopped). */
        if (dc->busy == SAVED && strcmp(c.command, "continue"))
            return;
        if (dc->busy == REMOVING)
            return;
        dc->head = (dc->head + 1) % DM_COMMAND_QUEUE;
        dc->len--;
        execute(dc, &c);
    }
}

static void on_command(void *opaque, const char *wpath, const char *token)
{
    struct dm_command *dc = opaque;
    struct queued_command c;
    xsw_path_t path;
    int rc;

    memset(&c, 0, sizeof(c));

    xsw_dm_path(dc->xs, path, sizeof(path), "command");
    rc = xsw_read(dc->xs, path, c.command, sizeof(c.command));
    if (rc == -ENOENT)
        return; /* our own deletion, or the initial firing */
    /* Taken off the key at once, so libxl can write the next one. */
    xsw_rm(dc->xs, path);
    if (rc < 0) {
        log_ratelimited(LOG_WARN, "xenstore: unreadable command (%s) ignored",
                        strerror(-rc));
        return;
    }
    xsw_dm_path(dc->xs, path, sizeof(path), "parameter");
    rc = xsw_read(dc->xs, path, c.parameter, sizeof(c.parameter));
    if (rc < 0 && rc != -ENOENT) {
        log_ratelimited(LOG_WARN, "xenstore: parameter of '%s' unreadable (%s)",
                        c.command, strerror(-rc));
        c.parameter[0] = '\0';
    }
    if (rc == -ENOENT)
        c.parameter[0] = '\0';
    /* A continue may not wait behind commands queued during a save: it
     * is what lets them run. */
    if (dc->busy == SAVED && !strcmp(c.command, "continue")) {
        execute(dc, &c);
        run_queue(dc);
        return;
    }
    if (dc->len == DM_COMMAND_QUEUE) {
        log_ratelimited(LOG_ERR, "xenstore: %d commands pending; '%s' refused",
                        DM_COMMAND_QUEUE, c.command);
        return;
    }
    dc->queue[(dc->head + dc->len) % DM_COMMAND_QUEUE] = c;
    dc->len++;
    run_queue(dc);
}

void dm_command_pci_removed(struct dm_command *dc,
                            const struct pci_host_addr *host)
{
    /* Bus, device and function only: QMP-style device ids, through which
     * completions arrive, carry no segment (always 0 on an x86 host). */
    if (dc->busy != REMOVING || host->bus != dc->removing.bus ||
        host->dev != dc->removing.dev || host->fn != dc->removing.fn)
        return;
    dc->busy = IDLE;
    dm_command_set_state(dc, "pci-removed");
    run_queue(dc);
}

static void on_logdirty(void *opaque, const char *wpath, const char *token)
{
    struct dm_command *dc = opaque;
    char value[16];
    xsw_path_t path;

    xsw_dm_path(dc->xs, path, sizeof(path), "logdirty/cmd");
    if (xsw_read(dc->xs, path, value, sizeof(value)) < 0)
        return;
    if (strcmp(value, "enable") && strcmp(value, "disable")) {
        log_ratelimited(LOG_WARN, "xenstore: logdirty/cmd '%s' ignored", value);
        return;
    }
    dc->ops.set_log_dirty(dc->ops.opaque, value[0] == 'e');
    xsw_dm_path(dc->xs, path, sizeof(path), "logdirty/ret");
    xsw_write(dc->xs, path, value);
}

static void on_dir(void *opaque, const char *wpath, const char *token)
{
    struct dm_command *dc = opaque;
    char value[8];
    xsw_path_t path;

    xsw_dm_path(dc->xs, path, sizeof(path), NULL);
    if (strcmp(wpath, path))
        return; /* a change below it */
    if (xsw_read(dc->xs, path, value, sizeof(value)) == -ENOENT) {
        log_info("xenstore: %s removed: exiting", path);
        dc->ops.quit(dc->ops.opaque);
    }
}

static void on_cpu(void *opaque, const char *wpath, const char *token)
{
    struct dm_command *dc = opaque;
    xsw_path_t base;
    char value[16];
    const char *p;
    uint64_t cpu;
    char num[8];
    size_t n;

    xsw_dom_path(dc->xs, base, sizeof(base), "cpu/");
    if (strncmp(wpath, base, strlen(base)))
        return;
    p = wpath + strlen(base);
    n = strcspn(p, "/");
    if (n == 0 || n >= sizeof(num) || strcmp(p + n, "/availability"))
        return;
    memcpy(num, p, n);
    num[n] = '\0';
    if (xsw_parse_uint(num, 10, 127, &cpu) < 0 ||
        xsw_read(dc->xs, wpath, value, sizeof(value)) < 0)
        return;
    if (!strcmp(value, "online") || !strcmp(value, "offline"))
        dc->ops.cpu_online(dc->ops.opaque, (unsigned)cpu, value[1] == 'n');
    else
        log_ratelimited(LOG_WARN, "xenstore: cpu %u availability '%s' ignored",
                        (unsigned)cpu, value);
}

int dm_command_start(struct xsw *xs, const struct dm_command_config *cfg,
                     const struct dm_command_ops *ops,
                     struct dm_command **out)
{
    struct dm_command *dc = calloc(1, sizeof(*dc));
    xsw_path_t path;
    int rc;

    if (!dc)
        return -ENOMEM;
    dc->xs = xs;
    dc->cfg = *cfg;
    dc->ops = *ops;
    xsw_dm_path(xs, path, sizeof(path), "command");
    rc = xsw_watch(xs, path, "dm-command", on_command, dc, &dc->w_command);
    if (rc < 0)
        goto out;
    xsw_dm_path(xs, path, sizeof(path), "logdirty/cmd");
    rc = xsw_watch(xs, path, "dm-logdirty", on_logdirty, dc, &dc->w_logdirty);
    if (rc < 0)
        goto out;
    xsw_dm_path(xs, path, sizeof(path), NULL);
    rc = xsw_watch(xs, path, "dm-dir", on_dir, dc, &dc->w_dir);
    if (rc < 0)
        goto out;
    if (cfg->trad) {
        xsw_dom_path(xs, path, sizeof(path), "cpu");
        rc = xsw_watch(xs, path, "dm-cpu", on_cpu, dc, &dc->w_cpu);
        if (rc < 0)
            goto out;
    }
    *out = dc;
    return 0;
out:
    dm_command_stop(dc);
    return rc;
}

void dm_command_stop(struct dm_command *dc)
{
    if (!dc)
        return;
    if (dc->w_command)
        xsw_unwatch(dc->xs, dc->w_command);
    if (dc->w_logdirty)
        xsw_unwatch(dc->xs, dc->w_logdirty);
    if (dc->w_dir)
        xsw_unwatch(dc->xs, dc->w_dir);
    if (dc->w_cpu)
        xsw_unwatch(dc->xs, dc->w_cpu);
    free(dc);
}
