/* Atomic accesses to shared memory for the Python harness (loaded with
 * ctypes). Python can copy bytes into an mmap but cannot order them or
 * compare-and-exchange, and the harness plays Xen, which does both on the
 * ioreq pages: a slot's state is published after its fields, the buffered
 * ring's write pointer after its slots, and the pointer pair is
 * canonicalised with a 64-bit compare-and-exchange that races with the
 * device model's atomic add to read_pointer. */
#include <stdbool.h>
#include <stdint.h>

uint8_t xdh_load8(const uint8_t *p);
void xdh_store8(uint8_t *p, uint8_t v);
uint32_t xdh_load32(const uint32_t *p);
void xdh_store32(uint32_t *p, uint32_t v);
uint64_t xdh_load64(const uint64_t *p);
uint64_t xdh_cmpxchg64(uint64_t *p, uint64_t expected, uint64_t desired);
void xdh_fence(void);

uint8_t xdh_load8(const uint8_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

void xdh_store8(uint8_t *p, uint8_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

uint32_t xdh_load32(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

void xdh_store32(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

uint64_t xdh_load64(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Returns the value found: equal to expected when the exchange happened. */
uint64_t xdh_cmpxchg64(uint64_t *p, uint64_t expected, uint64_t desired)
{
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;
}

void xdh_fence(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
