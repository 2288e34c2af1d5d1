#include "ram.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

static bool ram_contains(void *opaque, uint64_t gpa, uint64_t len)
{
    const struct local_ram *ram = opaque;

    return len <= ram->size && gpa <= ram->size - len;
}

static int ram_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
    const struct local_ram *ram = opaque;

    if (!ram_contains(opaque, gpa, len))
        return -EFAULT;
    memcpy(buf, ram->base + gpa, len);
    return 0;
}

static int ram_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
    struct local_ram *ram = opaque;

    if (!ram_contains(opaque, gpa, len))
        return -EFAULT;
    memcpy(ram->base + gpa, buf, len);
    return 0;
}

int local_ram_init(struct local_ram *ram, uint64_t size)
{
    void *p = MAP_FAILED;

    ram->base = NULL;
    ram->size = 0;
    if (size) {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return -errno;
        ram->base = p;
    }
    ram->size = size;
    return 0;
}

void local_ram_fini(struct local_ram *ram)
{
    if (ram->base)
        munmap(ram->base, ram->size);
    ram->base = NULL;
    ram->size = 0;
}

void local_ram_accessor(struct local_ram *ram, struct guest_memory *mem)
{
    *mem = (struct guest_memory){.contains = ram_contains,
                                 .read = ram_read,
                                 .write = ram_write,
                                 .opaque = ram};
}
