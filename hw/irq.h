/* The irq sink: where devices raise and lower interrupt lines. Devices never
 * know what is behind it — Xen dm_ops, the software PIC, or the qtest
 * socket's "IRQ raise N" lines. */
#ifndef XENDM_HW_IRQ_H
#define XENDM_HW_IRQ_H

#include <stdbool.h>

struct irq_sink_ops {
    void (*isa_irq)(void *opaque, unsigned irq, bool level);
    /* slot 0-31 on bus 0, pin 0-3 = INTA-INTD */
    void (*pci_intx)(void *opaque, unsigned slot, unsigned pin, bool level);
    /* PIIX3 PIRQ routing: link 0-3 (A-D) to ISA irq 0-15, 0 = disconnected */
    void (*pci_link_route)(void *opaque, unsigned link, unsigned irq);
};

struct irq_sink {
    const struct irq_sink_ops *ops;
    void *opaque;
};

static inline void irq_set_isa(const struct irq_sink *s, unsigned irq,
                               bool level)
{
    if (s && s->ops && s->ops->isa_irq)
        s->ops->isa_irq(s->opaque, irq, level);
}

static inline void irq_set_pci_intx(const struct irq_sink *s, unsigned slot,
                                    unsigned pin, bool level)
{
    if (s && s->ops && s->ops->pci_intx)
        s->ops->pci_intx(s->opaque, slot, pin, level);
}

static inline void irq_route_pci_link(const struct irq_sink *s, unsigned link,
                                      unsigned irq)
{
    if (s && s->ops && s->ops->pci_link_route)
        s->ops->pci_link_route(s->opaque, link, irq);
}

/* The GSI Xen's vIOAPIC (and the DSDT's APIC-mode _PRT) uses for a PCI INTx
 * line: xen/arch/x86/hvm/irq.c, see xen-dm-interfaces.md §2.5. */
static inline unsigned irq_pci_intx_gsi(unsigned slot, unsigned pin)
{
    return ((slot * 4 + slot / 8 + pin) % 32) + 16;
}

#endif
