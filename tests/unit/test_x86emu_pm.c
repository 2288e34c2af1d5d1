/* x86emu in 32-bit protected mode (386 model), through its callback table.
 *
 * Each test builds its descriptor tables, TSS and page tables in the RAM
 * of a small machine (8 MiB reached through map_ram, ports logged), puts a
 * hand-assembled program at CODE0 (ring 0) or CODE3 (ring 3) and either
 * enters protected mode from C (x86emu_segments_changed) or lets the
 * program switch itself. The byte arrays carry their assembly (NASM
 * syntax) in comments.
 *
 * Every IDT vector points at a stub that records, with SS-relative stores,
 * the vector (RES_VEC), [ESP] (RES_TOP: the error code when there is one,
 * else EIP), [ESP+4], [ESP+8], [ESP+12], a delivery count and ESP, then
 * halts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../x86emu/x86emu.h"

#define RAM_SIZE (8u << 20)

/* Memory layout (physical = linear unless a test maps otherwise). */
#define RES_VEC 0x500u   /* stub: vector */
#define RES_TOP 0x504u   /* stub: [esp] */
#define RES_TOP4 0x508u  /* stub: [esp+4] */
#define RES_COUNT 0x50cu /* stub: deliveries */
#define RES_ESP 0x510u   /* stub: esp */
#define RES_TOP8 0x514u  /* stub: [esp+8] */
#define RES_TOP12 0x518u /* stub: [esp+12] */
#define RES_DONE 0x520u  /* set by programs that finish normally */
#define RES_VALUE 0x524u
#define ARG 0x600u       /* program arguments */
#define GDT 0x1000u
#define GDT_ENTRIES 18u  /* selectors 0x00-0x88 */
#define IDT 0x2000u
#define TSS 0x3000u
#define TSS_IOMAP 0x68u  /* I/O bitmap offset inside the TSS */
#define LOW_CODE 0x6000u /* for 16-bit gates, which save only IP */
#define LDT 0x7000u
#define STUBS 0x8000u    /* 256 stubs of 128 bytes, up to PD */
#define STUB_SIZE 128u
#define PD 0x10000u
#define PT0 0x11000u     /* maps 0-4 MiB */
#define CODE0 0x20000u
#define HANDLER 0x21000u
#define CODE3 0x30000u
#define STACK0 0x70000u
#define STACK3 0x80000u
#define DATA 0x90000u

/* Selectors (see gdt_build). */
#define SEL_CODE0 0x08
#define SEL_DATA0 0x10
#define SEL_CODE3 0x18
#define SEL_DATA3 0x20
#define SEL_TSS 0x28
#define SEL_CODE16 0x30
#define SEL_DATA16 0x38
#define SEL_NOT_PRESENT 0x40
#define SEL_EXPDOWN16 0x48
#define SEL_CALL_GATE 0x50
#define SEL_READ_ONLY 0x58
#define SEL_PAGE_GRAN 0x60
#define SEL_CODE_NP 0x68
#define SEL_TASK_GATE 0x70
#define SEL_EXPDOWN32 0x78
#define SEL_LDT 0x80
#define SEL_CONFORMING 0x88

/* ------------------------------------------------------------------ */
/* Programs (NASM syntax in the comments). */

static const uint8_t pm_stub[] = {
    0x36, 0xc7, 0x05, 0x00, 0x05,
    0x00, 0x00, 0x44, 0x33, 0x22, 0x11,      /* mov dword [ss:0x500], 0x11223344 */
    0x8b, 0x04, 0x24,                        /* mov eax, [esp] */
    0x36, 0xa3, 0x04, 0x05, 0x00, 0x00,      /* mov [ss:0x504], eax */
    0x8b, 0x44, 0x24, 0x04,                  /* mov eax, [esp+4] */
    0x36, 0xa3, 0x08, 0x05, 0x00, 0x00,      /* mov [ss:0x508], eax */
    0x8b, 0x44, 0x24, 0x08,                  /* mov eax, [esp+8] */
    0x36, 0xa3, 0x14, 0x05, 0x00, 0x00,      /* mov [ss:0x514], eax */
    0x8b, 0x44, 0x24, 0x0c,                  /* mov eax, [esp+12] */
    0x36, 0xa3, 0x18, 0x05, 0x00, 0x00,      /* mov [ss:0x518], eax */
    0x36, 0xff, 0x05, 0x0c, 0x05, 0x00, 0x00, /* inc dword [ss:0x50c] */
    0x36, 0x89, 0x25, 0x10, 0x05, 0x00, 0x00, /* mov [ss:0x510], esp */
    0xf4,                                    /* hlt */
};

static const uint8_t code_round_trip[] = {
    0x31, 0xc0,                              /* xor ax, ax */
    0x8e, 0xd8,                              /* mov ds, ax */
    0x0f, 0x01, 0x16, 0x00, 0x06,            /* lgdt [0x600] */
    0x0f, 0x20, 0xc0,                        /* mov eax, cr0 */
    0x0c, 0x01,                              /* or al, 1 */
    0x0f, 0x22, 0xc0,                        /* mov cr0, eax */
    0x66, 0xea, 0x19, 0x00, 0x02, 0x00, 0x08, 0x00, /* jmp dword 0x08:0x20000+pm32 */
    0x66, 0xb8, 0x10, 0x00,                  /* mov ax, 0x10 */
    0x8e, 0xd8,                              /* mov ds, ax */
    0x8e, 0xc0,                              /* mov es, ax */
    0x8e, 0xd0,                              /* mov ss, ax */
    0xbc, 0x00, 0x00, 0x07, 0x00,            /* mov esp, 0x70000 */
    0xc7, 0x05, 0x00, 0x00, 0x09, 0x00, 0x78, 0x56, 0x34, 0x12, /* mov dword [0x90000], 0x12345678 */
    0x68, 0xcd, 0xab, 0x00, 0x00,            /* push dword 0xabcd */
    0x89, 0x25, 0x04, 0x00, 0x09, 0x00,      /* mov [0x90004], esp */
    0xea, 0x44, 0x00, 0x00, 0x00, 0x30, 0x00, /* jmp 0x30:pm16 */
    0x50,                                    /* push ax */
    0x66, 0xbf, 0x08, 0x00, 0x09, 0x00,      /* mov edi, 0x90008 */
    0x66, 0x67, 0x89, 0x27,                  /* mov [edi], esp */
    0xb8, 0x38, 0x00,                        /* mov ax, 0x38 */
    0x8e, 0xc0,                              /* mov es, ax */
    0x8e, 0xd0,                              /* mov ss, ax */
    0x66, 0xbc, 0x00, 0x70, 0x00, 0x00,      /* mov esp, 0x7000 */
    0x0f, 0x20, 0xc0,                        /* mov eax, cr0 */
    0x24, 0xfe,                              /* and al, 0xfe */
    0x0f, 0x22, 0xc0,                        /* mov cr0, eax */
    0xea, 0x69, 0x00, 0x00, 0x20,            /* jmp 0x2000:real */
    0x31, 0xc0,                              /* xor ax, ax */
    0x8e, 0xd0,                              /* mov ss, ax */
    0x8e, 0xc0,                              /* mov es, ax */
    0x8e, 0xd8,                              /* mov ds, ax */
    0x66, 0xbe, 0x00, 0x00, 0x10, 0x00,      /* mov esi, 0x100000 */
    0x66, 0x67, 0xc7, 0x06, 0xaa, 0x55, 0xaa, 0x55, /* mov dword [esi], 0x55aa55aa */
    0xf4,                                    /* hlt */
};

static const uint8_t code_far_call[] = {
    0x9a, 0x2b, 0x00, 0x02, 0x00, 0x08, 0x00, /* call 0x08:func */
    0x89, 0x1d, 0x00, 0x00, 0x09, 0x00,      /* mov [0x90000], ebx */
    0x89, 0x25, 0x04, 0x00, 0x09, 0x00,      /* mov [0x90004], esp */
    0x6a, 0x11,                              /* push dword 0x11 */
    0x6a, 0x22,                              /* push dword 0x22 */
    0x9a, 0x31, 0x00, 0x02, 0x00, 0x08, 0x00, /* call 0x08:func2 */
    0x89, 0x25, 0x08, 0x00, 0x09, 0x00,      /* mov [0x90008], esp */
    0xff, 0x1d, 0x34, 0x00, 0x02, 0x00,      /* call far [farptr] */
    0xf4,                                    /* hlt */
    0xbb, 0x34, 0x12, 0x00, 0x00,            /* mov ebx, 0x1234 */
    0xcb,                                    /* retf */
    0xca, 0x08, 0x00,                        /* retf 8 */
    0x3a, 0x00, 0x02, 0x00,                  /* farptr: dd func3 */
    0x08, 0x00,                              /* dw 0x08 */
    0xb9, 0x77, 0x00, 0x00, 0x00,            /* mov ecx, 0x77 */
    0xcb,                                    /* retf */
};

static const uint8_t code_load_ds[] = {
    0x66, 0xa1, 0x00, 0x06, 0x00, 0x00,      /* mov ax, [0x600] */
    0x8e, 0xd8,                              /* mov ds, ax */
    0x36, 0xc7, 0x05, 0x20, 0x05,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00,      /* mov dword [ss:0x520], 1 */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t code_load_ss[] = {
    0x66, 0xa1, 0x00, 0x06, 0x00, 0x00,      /* mov ax, [0x600] */
    0x8e, 0xd0,                              /* mov ss, ax */
    0xc7, 0x05, 0x20, 0x05, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* mov dword [0x520], 1 */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t code_jmp_far[] = {
    0xff, 0x2d, 0x04, 0x06, 0x00, 0x00,      /* jmp far [0x604] */
};

static const uint8_t code_call_far[] = {
    0xff, 0x1d, 0x04, 0x06, 0x00, 0x00,      /* call far [0x604] */
};

static const uint8_t code_use_null_ds[] = {
    0x31, 0xc0,                              /* xor eax, eax */
    0x8e, 0xd8,                              /* mov ds, ax */
    0xa1, 0x00, 0x00, 0x00, 0x00,            /* mov eax, [0] */
    0xf4,                                    /* hlt */
};

static const uint8_t code_expand_down[] = {
    0x66, 0xa1, 0x00, 0x06, 0x00, 0x00,      /* mov ax, [0x600] */
    0x8b, 0x35, 0x08, 0x06, 0x00, 0x00,      /* mov esi, [0x608] */
    0x8e, 0xd8,                              /* mov ds, ax */
    0x66, 0x8b, 0x06,                        /* mov ax, [esi] */
    0x36, 0xa3, 0x24, 0x05, 0x00, 0x00,      /* mov [ss:0x524], eax */
    0x36, 0xc7, 0x05, 0x20, 0x05,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00,      /* mov dword [ss:0x520], 1 */
    0xf4,                                    /* hlt */
};

static const uint8_t code_gates_if[] = {
    0xfb,                                    /* sti */
    0xcd, 0x40,                              /* int 0x40 */
    0xcd, 0x41,                              /* int 0x41 */
    0x9c,                                    /* pushfd */
    0x58,                                    /* pop eax */
    0xa3, 0x10, 0x00, 0x09, 0x00,            /* mov [0x90010], eax */
    0xf4,                                    /* hlt */
};

static const uint8_t handler_gate_flags[] = {
    0x9c,                                    /* pushfd */
    0x58,                                    /* pop eax */
    0x89, 0x03,                              /* mov [ebx], eax */
    0x8b, 0x44, 0x24, 0x08,                  /* mov eax, [esp+8] */
    0x89, 0x43, 0x04,                        /* mov [ebx+4], eax */
    0x83, 0xc3, 0x08,                        /* add ebx, 8 */
    0xcf,                                    /* iretd */
};

static const uint8_t code_to_ring3[] = {
    0x66, 0xb8, 0x28, 0x00,                  /* mov ax, 0x28 */
    0x0f, 0x00, 0xd8,                        /* ltr ax */
    0x6a, 0x23,                              /* push dword 0x23 */
    0x68, 0x00, 0x00, 0x08, 0x00,            /* push dword 0x80000 */
    0x6a, 0x02,                              /* push dword 0x002 */
    0x6a, 0x1b,                              /* push dword 0x1b */
    0x68, 0x00, 0x00, 0x03, 0x00,            /* push dword 0x30000 */
    0xcf,                                    /* iretd */
};

static const uint8_t r3_int_roundtrip[] = {
    0x66, 0xb8, 0x23, 0x00,                  /* mov ax, 0x23 */
    0x8e, 0xd8,                              /* mov ds, ax */
    0xbb, 0x11, 0x11, 0x00, 0x00,            /* mov ebx, 0x1111 */
    0xcd, 0x42,                              /* int 0x42 */
    0x89, 0x1d, 0x00, 0x01, 0x09, 0x00,      /* mov [0x90100], ebx */
    0x89, 0x25, 0x04, 0x01, 0x09, 0x00,      /* mov [0x90104], esp */
    0x8c, 0x15, 0x08, 0x01, 0x09, 0x00,      /* mov [0x90108], ss */
    0x8c, 0x0d, 0x0c, 0x01, 0x09, 0x00,      /* mov [0x9010c], cs */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t handler_ring0_iret[] = {
    0x36, 0x89, 0x25, 0x00, 0x00, 0x09, 0x00, /* mov [ss:0x90000], esp */
    0x8c, 0xd0,                              /* mov eax, ss */
    0x36, 0xa3, 0x04, 0x00, 0x09, 0x00,      /* mov [ss:0x90004], eax */
    0x8c, 0xc8,                              /* mov eax, cs */
    0x36, 0xa3, 0x08, 0x00, 0x09, 0x00,      /* mov [ss:0x90008], eax */
    0xbb, 0x22, 0x22, 0x00, 0x00,            /* mov ebx, 0x2222 */
    0xcf,                                    /* iretd */
};

static const uint8_t r3_int40[] = {
    0xcd, 0x40,                              /* int 0x40 */
};

static const uint8_t r3_cli[] = {
    0xfa,                                    /* cli */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t r3_sti[] = {
    0xfb,                                    /* sti */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t r3_hlt[] = {
    0xf4,                                    /* hlt */
};

static const uint8_t r3_out[] = {
    0xb0, 0x5a,                              /* mov al, 0x5a */
    0xe6, 0x80,                              /* out 0x80, al */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t r3_out81[] = {
    0xb0, 0x5a,                              /* mov al, 0x5a */
    0xe6, 0x81,                              /* out 0x81, al */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t r3_mov_cr0[] = {
    0x0f, 0x20, 0xc0,                        /* mov eax, cr0 */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t r3_popf[] = {
    0x68, 0x02, 0x30, 0x00, 0x00,            /* push dword 0x3002 */
    0x9d,                                    /* popfd */
    0x9c,                                    /* pushfd */
    0x58,                                    /* pop eax */
    0xa3, 0x00, 0x00, 0x09, 0x00,            /* mov [0x90000], eax */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t code_enable_paging[] = {
    0xb8, 0x00, 0x00, 0x01, 0x00,            /* mov eax, 0x10000 */
    0x0f, 0x22, 0xd8,                        /* mov cr3, eax */
    0x0f, 0x20, 0xe0,                        /* mov eax, cr4 */
    0x83, 0xc8, 0x10,                        /* or eax, 0x10 */
    0x0f, 0x22, 0xe0,                        /* mov cr4, eax */
    0x0f, 0x20, 0xc0,                        /* mov eax, cr0 */
    0x0d, 0x00, 0x00, 0x00, 0x80,            /* or eax, 0x80000000 */
    0x0f, 0x22, 0xc0,                        /* mov cr0, eax */
    0xc7, 0x05, 0x10, 0x00, 0xc0, 0x00, 0x0d, 0xf0, 0xed, 0xfe, /* mov dword [0xc00010], 0xfeedf00d */
    0xa1, 0x10, 0x00, 0x40, 0x00,            /* mov eax, [0x400010] */
    0xa3, 0x00, 0x00, 0x09, 0x00,            /* mov [0x90000], eax */
    0xf4,                                    /* hlt */
};

static const uint8_t code_pf_read[] = {
    0xa1, 0x00, 0x06, 0x00, 0x00,            /* mov eax, [0x600] */
    0x8b, 0x18,                              /* mov ebx, [eax] */
    0xc7, 0x05, 0x04, 0x06, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* mov dword [0x604], 1 */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t code_pf_write[] = {
    0xa1, 0x00, 0x06, 0x00, 0x00,            /* mov eax, [0x600] */
    0x89, 0x18,                              /* mov [eax], ebx */
    0xc7, 0x05, 0x04, 0x06, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* mov dword [0x604], 1 */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t code_pf_rmw[] = {
    0xa1, 0x00, 0x06, 0x00, 0x00,            /* mov eax, [0x600] */
    0x39, 0xc0,                              /* cmp eax, eax */
    0x83, 0x00, 0x01,                        /* add dword [eax], 1 */
    0xc7, 0x05, 0x04, 0x06, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* mov dword [0x604], 1 */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t code_invlpg[] = {
    0xa1, 0x00, 0x00, 0x30, 0x00,            /* mov eax, [0x300000] */
    0xa3, 0x00, 0x00, 0x09, 0x00,            /* mov [0x90000], eax */
    0xc7, 0x05, 0x00, 0x1c, 0x01, 0x00, 0x07, 0x10, 0x30, 0x00, /* mov dword [0x11c00], 0x301007 */
    0xa1, 0x00, 0x00, 0x30, 0x00,            /* mov eax, [0x300000] */
    0xa3, 0x04, 0x00, 0x09, 0x00,            /* mov [0x90004], eax */
    0x0f, 0x01, 0x3d, 0x00, 0x00, 0x30, 0x00, /* invlpg [0x300000] */
    0xa1, 0x00, 0x00, 0x30, 0x00,            /* mov eax, [0x300000] */
    0xa3, 0x08, 0x00, 0x09, 0x00,            /* mov [0x90008], eax */
    0xc7, 0x05, 0x00, 0x1c, 0x01, 0x00, 0x07, 0x00, 0x30, 0x00, /* mov dword [0x11c00], 0x300007 */
    0x0f, 0x20, 0xd8,                        /* mov eax, cr3 */
    0x0f, 0x22, 0xd8,                        /* mov cr3, eax */
    0xa1, 0x00, 0x00, 0x30, 0x00,            /* mov eax, [0x300000] */
    0xa3, 0x0c, 0x00, 0x09, 0x00,            /* mov [0x9000c], eax */
    0xa1, 0x00, 0x00, 0xc0, 0x00,            /* mov eax, [0xc00000] */
    0xa3, 0x10, 0x00, 0x09, 0x00,            /* mov [0x90010], eax */
    0xc7, 0x05, 0x0c, 0x00, 0x01, 0x00, 0x87, 0x00, 0x80, 0x00, /* mov dword [0x1000c], 0x800087 */
    0x0f, 0x01, 0x3d, 0x00, 0x00, 0xc0, 0x00, /* invlpg [0xc00000] */
    0xa1, 0x00, 0x00, 0xc0, 0x00,            /* mov eax, [0xc00000] */
    0xa3, 0x14, 0x00, 0x09, 0x00,            /* mov [0x90014], eax */
    0xf4,                                    /* hlt */
};

static const uint8_t code_cpuid[] = {
    0x31, 0xc0,                              /* xor eax, eax */
    0x0f, 0xa2,                              /* cpuid */
    0xa3, 0x00, 0x00, 0x09, 0x00,            /* mov [0x90000], eax */
    0x89, 0x1d, 0x04, 0x00, 0x09, 0x00,      /* mov [0x90004], ebx */
    0x89, 0x15, 0x08, 0x00, 0x09, 0x00,      /* mov [0x90008], edx */
    0x89, 0x0d, 0x0c, 0x00, 0x09, 0x00,      /* mov [0x9000c], ecx */
    0xb8, 0x01, 0x00, 0x00, 0x00,            /* mov eax, 1 */
    0x0f, 0xa2,                              /* cpuid */
    0xa3, 0x10, 0x00, 0x09, 0x00,            /* mov [0x90010], eax */
    0x89, 0x15, 0x14, 0x00, 0x09, 0x00,      /* mov [0x90014], edx */
    0x9c,                                    /* pushfd */
    0x58,                                    /* pop eax */
    0x35, 0x00, 0x00, 0x20, 0x00,            /* xor eax, 0x200000 */
    0x50,                                    /* push eax */
    0x9d,                                    /* popfd */
    0x9c,                                    /* pushfd */
    0x5b,                                    /* pop ebx */
    0x31, 0xd8,                              /* xor eax, ebx */
    0xa3, 0x18, 0x00, 0x09, 0x00,            /* mov [0x90018], eax */
    0xf4,                                    /* hlt */
};

static const uint8_t code_fpu[] = {
    0xa1, 0x00, 0x06, 0x00, 0x00,            /* mov eax, [0x600] */
    0x0f, 0x22, 0xc0,                        /* mov cr0, eax */
    0xc7, 0x05, 0x04, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* mov dword [0x604], 0 */
    0xdb, 0xe3,                              /* fninit */
    0xc7, 0x05, 0x04, 0x06, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* mov dword [0x604], 1 */
    0x9b,                                    /* wait */
    0xc7, 0x05, 0x04, 0x06, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, /* mov dword [0x604], 2 */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t r3_call_gate[] = {
    0x68, 0xaa, 0xaa, 0x00, 0x00,            /* push dword 0xaaaa */
    0x68, 0xbb, 0xbb, 0x00, 0x00,            /* push dword 0xbbbb */
    0x9a, 0x00, 0x00, 0x00, 0x00, 0x50, 0x00, /* call 0x50:0 */
    0x89, 0x25, 0x00, 0x01, 0x09, 0x00,      /* mov [0x90100], esp */
    0xa3, 0x04, 0x01, 0x09, 0x00,            /* mov [0x90104], eax */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t handler_call_gate[] = {
    0x8b, 0x44, 0x24, 0x08,                  /* mov eax, [esp+8] */
    0x36, 0xa3, 0x00, 0x00, 0x09, 0x00,      /* mov [ss:0x90000], eax */
    0x8b, 0x44, 0x24, 0x0c,                  /* mov eax, [esp+12] */
    0x36, 0xa3, 0x04, 0x00, 0x09, 0x00,      /* mov [ss:0x90004], eax */
    0x8b, 0x44, 0x24, 0x10,                  /* mov eax, [esp+16] */
    0x36, 0xa3, 0x08, 0x00, 0x09, 0x00,      /* mov [ss:0x90008], eax */
    0x8b, 0x44, 0x24, 0x14,                  /* mov eax, [esp+20] */
    0x36, 0xa3, 0x0c, 0x00, 0x09, 0x00,      /* mov [ss:0x9000c], eax */
    0x36, 0x89, 0x25, 0x10, 0x00, 0x09, 0x00, /* mov [ss:0x90010], esp */
    0x8c, 0xc8,                              /* mov eax, cs */
    0x36, 0xa3, 0x14, 0x00, 0x09, 0x00,      /* mov [ss:0x90014], eax */
    0x66, 0xb8, 0x10, 0x00,                  /* mov ax, 0x10 */
    0x8e, 0xc0,                              /* mov es, ax */
    0xb8, 0x5a, 0x5a, 0x00, 0x00,            /* mov eax, 0x5a5a */
    0xca, 0x08, 0x00,                        /* retf 8 */
};

static const uint8_t code_task_gate[] = {
    0xbb, 0x01, 0x00, 0x00, 0x00,            /* mov ebx, 1 */
    0xea, 0x00, 0x00, 0x00, 0x00, 0x70, 0x00, /* jmp 0x70:0 */
};

static const uint8_t code_iret_vm[] = {
    0x6a, 0x00,                              /* push dword 0 */
    0x6a, 0x00,                              /* push dword 0 */
    0x6a, 0x00,                              /* push dword 0 */
    0x6a, 0x00,                              /* push dword 0 */
    0x68, 0x00, 0x10, 0x00, 0x00,            /* push dword 0x1000 */
    0x68, 0x00, 0x20, 0x00, 0x00,            /* push dword 0x2000 */
    0x68, 0x02, 0x00, 0x02, 0x00,            /* push dword 0x20002 */
    0x68, 0x00, 0x10, 0x00, 0x00,            /* push dword 0x1000 */
    0x68, 0x00, 0x01, 0x00, 0x00,            /* push dword 0x100 */
    0xcf,                                    /* iretd */
};

static const uint8_t code_descriptor_insns[] = {
    0x66, 0xb8, 0x58, 0x00,                  /* mov ax, 0x58 */
    0x0f, 0x02, 0xd8,                        /* lar ebx, ax */
    0x89, 0x1d, 0x00, 0x00, 0x09, 0x00,      /* mov [0x90000], ebx */
    0x0f, 0x94, 0x05, 0x04, 0x00, 0x09, 0x00, /* setz [0x90004] */
    0x66, 0xb8, 0x60, 0x00,                  /* mov ax, 0x60 */
    0x0f, 0x03, 0xc8,                        /* lsl ecx, ax */
    0x89, 0x0d, 0x14, 0x00, 0x09, 0x00,      /* mov [0x90014], ecx */
    0x66, 0xb8, 0x08, 0x00,                  /* mov ax, 0x08 */
    0x0f, 0x00, 0xe8,                        /* verw ax */
    0x0f, 0x94, 0x05, 0x08, 0x00, 0x09, 0x00, /* setz [0x90008] */
    0x0f, 0x00, 0xe0,                        /* verr ax */
    0x0f, 0x94, 0x05, 0x09, 0x00, 0x09, 0x00, /* setz [0x90009] */
    0x66, 0xb8, 0x10, 0x00,                  /* mov ax, 0x10 */
    0x0f, 0x00, 0xe8,                        /* verw ax */
    0x0f, 0x94, 0x05, 0x0a, 0x00, 0x09, 0x00, /* setz [0x9000a] */
    0x66, 0xb8, 0x00, 0x10,                  /* mov ax, 0x1000 */
    0x0f, 0x02, 0xd8,                        /* lar ebx, ax */
    0x0f, 0x94, 0x05, 0x0b, 0x00, 0x09, 0x00, /* setz [0x9000b] */
    0x66, 0xb8, 0x80, 0x00,                  /* mov ax, 0x80 */
    0x0f, 0x00, 0xd0,                        /* lldt ax */
    0x0f, 0x00, 0x05, 0x0c, 0x00, 0x09, 0x00, /* sldt [0x9000c] */
    0x0f, 0x00, 0x0d, 0x0e, 0x00, 0x09, 0x00, /* str [0x9000e] */
    0x66, 0xb8, 0x10, 0x00,                  /* mov ax, 0x10 */
    0x66, 0xbb, 0x23, 0x00,                  /* mov bx, 0x23 */
    0x63, 0xd8,                              /* arpl ax, bx */
    0x0f, 0x94, 0x05, 0x10, 0x00, 0x09, 0x00, /* setz [0x90010] */
    0x66, 0xa3, 0x12, 0x00, 0x09, 0x00,      /* mov [0x90012], ax */
    0x66, 0xb8, 0x0c, 0x00,                  /* mov ax, 0x0c */
    0x8e, 0xd8,                              /* mov ds, ax */
    0xa1, 0x20, 0x00, 0x00, 0x00,            /* mov eax, [0x20] */
    0x36, 0xa3, 0x18, 0x00, 0x09, 0x00,      /* mov [ss:0x90018], eax */
    0xf4,                                    /* hlt */
};

static const uint8_t code_gp_ss[] = {
    0x31, 0xc0,                              /* xor eax, eax */
    0x8e, 0xd0,                              /* mov ss, ax */
    0xf4,                                    /* hlt */
};

static const uint8_t code_486[] = {
    0xb8, 0x44, 0x33, 0x22, 0x11,            /* mov eax, 0x11223344 */
    0x0f, 0xc8,                              /* bswap eax */
    0xa3, 0x00, 0x00, 0x09, 0x00,            /* mov [0x90000], eax */
    0xb8, 0x05, 0x00, 0x00, 0x00,            /* mov eax, 5 */
    0xc7, 0x05, 0x04, 0x00, 0x09, 0x00, 0x05, 0x00, 0x00, 0x00, /* mov dword [0x90004], 5 */
    0xb9, 0x09, 0x00, 0x00, 0x00,            /* mov ecx, 9 */
    0xf0, 0x0f, 0xb1, 0x0d, 0x04, 0x00, 0x09, 0x00, /* lock cmpxchg [0x90004], ecx */
    0x0f, 0x94, 0x05, 0x08, 0x00, 0x09, 0x00, /* setz [0x90008] */
    0x0f, 0xb1, 0x0d, 0x04, 0x00, 0x09, 0x00, /* cmpxchg [0x90004], ecx */
    0x0f, 0x94, 0x05, 0x09, 0x00, 0x09, 0x00, /* setz [0x90009] */
    0xa3, 0x0c, 0x00, 0x09, 0x00,            /* mov [0x9000c], eax */
    0xba, 0x03, 0x00, 0x00, 0x00,            /* mov edx, 3 */
    0xf0, 0x0f, 0xc1, 0x15, 0x04, 0x00, 0x09, 0x00, /* lock xadd [0x90004], edx */
    0x89, 0x15, 0x10, 0x00, 0x09, 0x00,      /* mov [0x90010], edx */
    0xf4,                                    /* hlt */
};

static const uint8_t code_wait[] = {
    0xa1, 0x00, 0x06, 0x00, 0x00,            /* mov eax, [0x600] */
    0x0f, 0x22, 0xc0,                        /* mov cr0, eax */
    0x9b,                                    /* wait */
    0xc7, 0x05, 0x04, 0x06, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* mov dword [0x604], 1 */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t code_gate16[] = {
    0xcd, 0x44,                              /* int 0x44 */
    0x89, 0x25, 0x04, 0x00, 0x09, 0x00,      /* mov [0x90004], esp */
    0x89, 0x1d, 0x0c, 0x00, 0x09, 0x00,      /* mov [0x9000c], ebx */
    0xf4,                                    /* hlt */
};

static const uint8_t handler_gate16[] = {
    0x66, 0x67, 0x89, 0x25, 0x08, 0x00, 0x09, 0x00, /* mov [dword 0x90008], esp */
    0x66, 0x67, 0x8b, 0x1c, 0x24,            /* mov ebx, [esp] */
    0xcf,                                    /* iret */
};

static const uint8_t r3_int42[] = {
    0xcd, 0x42,                              /* int 0x42 */
};

static const uint8_t r3_spin[] = {
    0xeb, 0xfe,                              /* jmp $ */
};

static const uint8_t code_page_end[] = {
    0xbb, 0x01, 0x00, 0x00, 0x00,            /* mov ebx, 1 */
    0xcd, 0x43,                              /* int 0x43 */
};

static const uint8_t code_straddle[] = {
    0xb8, 0x78, 0x56, 0x34, 0x12,            /* mov eax, 0x12345678 */
};

/* ------------------------------------------------------------------ */
/* The machine. */

struct io_record {
    bool out;
    uint16_t port;
    unsigned size;
    uint32_t value;
};

struct machine {
    struct x86emu cpu;
    uint8_t *ram;
    struct io_record io[16];
    unsigned nio;
    int pending_vector; /* int_ack's answer */
};

static uint8_t *t_map_ram(void *opaque, uint32_t page, bool write)
{
    struct machine *m = opaque;

    return page < RAM_SIZE ? m->ram + page : NULL;
}

static uint32_t t_mem_read(void *opaque, uint32_t addr, unsigned size)
{
    return 0xffffffffu & (size == 4 ? ~0u : (1u << (8 * size)) - 1);
}

static void t_mem_write(void *opaque, uint32_t addr, uint32_t value,
                        unsigned size)
{
}

static uint32_t t_io_in(void *opaque, uint16_t port, unsigned size)
{
    struct machine *m = opaque;

    if (m->nio < 16)
        m->io[m->nio++] = (struct io_record){false, port, size, 0};
    return 0;
}

static void t_io_out(void *opaque, uint16_t port, uint32_t value,
                     unsigned size)
{
    struct machine *m = opaque;

    if (m->nio < 16)
        m->io[m->nio++] = (struct io_record){true, port, size, value};
}

static int t_int_ack(void *opaque)
{
    struct machine *m = opaque;
    int v = m->pending_vector;

    m->pending_vector = -1;
    x86emu_set_intr(&m->cpu, false);
    return v;
}

static const struct x86emu_ops t_ops = {
    .mem_read = t_mem_read,
    .mem_write = t_mem_write,
    .io_in = t_io_in,
    .io_out = t_io_out,
    .int_ack = t_int_ack,
    .map_ram = t_map_ram,
};

static uint32_t rd32(const struct machine *m, uint32_t addr)
{
    uint32_t v;

    memcpy(&v, m->ram + addr, 4);
    return v;
}

static uint16_t rd16(const struct machine *m, uint32_t addr)
{
    uint16_t v;

    memcpy(&v, m->ram + addr, 2);
    return v;
}

static void wr32(struct machine *m, uint32_t addr, uint32_t v)
{
    memcpy(m->ram + addr, &v, 4);
}

static void wr16(struct machine *m, uint32_t addr, uint16_t v)
{
    memcpy(m->ram + addr, &v, 2);
}

static void poke(struct machine *m, uint32_t addr, const uint8_t *bytes,
                 size_t len)
{
    assert_true(addr + len <= RAM_SIZE);
    memcpy(m->ram + addr, bytes, len);
}

/* A code/data/system descriptor. access is byte 5 (P DPL S type), flags
 * the high nibble of byte 6 (G D/B). */
static void set_desc(struct machine *m, uint32_t table, unsigned index,
                     uint32_t base, uint32_t limit, uint8_t access,
                     uint8_t flags)
{
    uint32_t lo = (base << 16) | (limit & 0xffff);
    uint32_t hi = (base & 0xff000000u) | (base >> 16 & 0xff) |
                  (uint32_t)access << 8 | (limit & 0xf0000) |
                  (uint32_t)(flags & 0xf0) << 16;

    wr32(m, table + index * 8, lo);
    wr32(m, table + index * 8 + 4, hi);
}

/* A gate: type 0xc call gate, 0xe interrupt gate, 0xf trap gate, 0x5
 * task gate (the 32-bit forms); dpl; param count for call gates. */
static void set_gate(struct machine *m, uint32_t addr, uint16_t sel,
                     uint32_t off, uint8_t type, unsigned dpl, bool present,
                     unsigned count)
{
    wr32(m, addr, (uint32_t)sel << 16 | (off & 0xffff));
    wr32(m, addr + 4, (off & 0xffff0000u) |
                          (uint32_t)(present ? 0x80 : 0) << 8 |
                          (uint32_t)dpl << 13 | (uint32_t)type << 8 |
                          (count & 0x1f));
}

static void set_idt_gate(struct machine *m, unsigned vec, uint32_t off,
                         uint8_t type, unsigned dpl)
{
    set_gate(m, IDT + vec * 8, SEL_CODE0, off, type, dpl, true, 0);
}

#define ACC_CODE0 0x9b  /* present, DPL 0, code, readable, accessed */
#define ACC_DATA0 0x93  /* present, DPL 0, data, writable, accessed */
#define ACC_CODE3 0xfb
#define ACC_DATA3 0xf3
#define FLAG_4K_32 0xc0 /* G, D/B */

static void gdt_build(struct machine *m)
{
    set_desc(m, GDT, 1, 0, 0xfffff, ACC_CODE0, FLAG_4K_32);
    set_desc(m, GDT, 2, 0, 0xfffff, ACC_DATA0, FLAG_4K_32);
    set_desc(m, GDT, 3, 0, 0xfffff, ACC_CODE3, FLAG_4K_32);
    set_desc(m, GDT, 4, 0, 0xfffff, ACC_DATA3, FLAG_4K_32);
    set_desc(m, GDT, 5, TSS, 0x67, 0x89, 0);      /* available 32-bit TSS */
    set_desc(m, GDT, 6, CODE0, 0xffff, ACC_CODE0, 0); /* 16-bit code */
    set_desc(m, GDT, 7, 0, 0xffff, ACC_DATA0, 0);     /* 16-bit data */
    set_desc(m, GDT, 8, 0, 0xfffff, 0x13, FLAG_4K_32); /* not present */
    set_desc(m, GDT, 9, DATA, 0xfff, 0x97, 0);   /* expand-down, B=0 */
    set_gate(m, GDT + 10 * 8, SEL_CODE0, HANDLER, 0xc, 3, true, 2);
    set_desc(m, GDT, 11, 0, 0xfffff, 0x91, FLAG_4K_32); /* read-only */
    set_desc(m, GDT, 12, DATA, 0, ACC_DATA0, 0xc0); /* G: limit 0xfff */
    set_desc(m, GDT, 13, 0, 0xfffff, 0x1b, FLAG_4K_32); /* code, absent */
    set_gate(m, GDT + 14 * 8, SEL_TSS, 0, 0x5, 0, true, 0);
    set_desc(m, GDT, 15, DATA, 0xfff, 0x97, 0x40); /* expand-down, B=1 */
    set_desc(m, GDT, 16, LDT, 0x17, 0x82, 0);     /* LDT */
    set_desc(m, GDT, 17, 0, 0xfffff, 0x9f, FLAG_4K_32); /* conforming */
    /* LDT entry 1 (selector 0x0c): data at DATA. */
    set_desc(m, LDT, 1, DATA, 0xffff, ACC_DATA0, 0);
}

/* Every vector goes to its recording stub through an interrupt gate of
 * DPL 3 (so INT n works from ring 3), except where a test changes it. */
static void idt_build(struct machine *m)
{
    for (unsigned v = 0; v < 256; v++) {
        uint32_t stub = STUBS + v * STUB_SIZE;

        poke(m, stub, pm_stub, sizeof(pm_stub));
        wr32(m, stub + 7, v);
        set_idt_gate(m, v, stub, 0xe, 3);
    }
}

/* TSS: ring-0 stack STACK0 in SEL_DATA0; no I/O bitmap (its offset lies
 * beyond the limit). */
static void tss_build(struct machine *m)
{
    wr32(m, TSS + 4, STACK0);
    wr32(m, TSS + 8, SEL_DATA0);
    wr16(m, TSS + 0x66, 0xffff);
}

/* Identity page tables for 0-4 MiB (user, writable) and one 4 MiB page at
 * 4 MiB; PDE 3 maps linear 12 MiB to physical 4 MiB (an alias). */
static void paging_build(struct machine *m)
{
    wr32(m, PD, PT0 | 7);
    wr32(m, PD + 4, 0x400000 | 0x87);
    wr32(m, PD + 12, 0x400000 | 0x87);
    for (uint32_t i = 0; i < 1024; i++)
        wr32(m, PT0 + i * 4, i << 12 | 7);
}

static void load_seg(struct machine *m, enum x86emu_sreg sreg, uint16_t sel)
{
    uint32_t lo = rd32(m, GDT + (sel & ~7u)), hi = rd32(m, GDT + (sel & ~7u) + 4);
    struct x86emu_segment *s = &m->cpu.seg[sreg];
    uint32_t limit = (lo & 0xffff) | (hi & 0xf0000);

    s->selector = sel;
    s->base = (lo >> 16) | (hi & 0xff) << 16 | (hi & 0xff000000u);
    s->limit = (hi & 0x800000) ? limit << 12 | 0xfff : limit;
    s->attr = (uint16_t)((hi >> 8) & 0xf0ff);
}

static struct machine *machine_new(void)
{
    struct machine *m = calloc(1, sizeof(*m));

    assert_non_null(m);
    m->ram = calloc(1, RAM_SIZE);
    assert_non_null(m->ram);
    m->pending_vector = -1;
    x86emu_init(&m->cpu, X86EMU_MODEL_386, &t_ops, m);
    gdt_build(m);
    idt_build(m);
    tss_build(m);
    paging_build(m);
    wr16(m, ARG, GDT_ENTRIES * 8 - 1); /* an LGDT operand for real mode */
    wr32(m, ARG + 2, GDT);
    return m;
}

/* Protected mode from C, at privilege level cpl (0 or 3), flat segments,
 * TR loaded, executing code at eip. */
static void enter_pm(struct machine *m, unsigned cpl, uint32_t eip)
{
    struct x86emu *cpu = &m->cpu;

    cpu->gdtr.base = GDT;
    cpu->gdtr.limit = GDT_ENTRIES * 8 - 1;
    cpu->idtr.base = IDT;
    cpu->idtr.limit = 256 * 8 - 1;
    cpu->cr0 |= X86EMU_CR0_PE;
    load_seg(m, X86EMU_SEG_CS, cpl ? SEL_CODE3 | 3 : SEL_CODE0);
    for (unsigned s = X86EMU_SEG_ES; s < X86EMU_SEG_COUNT; s++)
        if (s != X86EMU_SEG_CS)
            load_seg(m, s, cpl ? SEL_DATA3 | 3 : SEL_DATA0);
    cpu->tr.selector = SEL_TSS;
    cpu->tr.base = TSS;
    cpu->tr.limit = 0x67;
    cpu->tr.attr = 0x8b;
    cpu->gpr[X86EMU_ESP] = cpl ? STACK3 : STACK0;
    cpu->eip = eip;
    x86emu_segments_changed(cpu);
}

static void enable_paging(struct machine *m)
{
    m->cpu.cr3 = PD;
    m->cpu.cr4 |= X86EMU_CR4_PSE;
    m->cpu.cr0 |= X86EMU_CR0_PG;
    x86emu_flush_tlb(&m->cpu);
}

static void machine_free(struct machine *m)
{
    free(m->ram);
    free(m);
}

static void run_to_halt(struct machine *m)
{
    assert_int_equal(x86emu_run(&m->cpu, 100000), X86EMU_STOP_HALT);
}

/* Runs to the stub of vector vec and checks what it recorded at [ESP]. */
static void expect_vector(struct machine *m, unsigned vec, uint32_t top)
{
    run_to_halt(m);
    assert_int_equal(rd32(m, RES_COUNT), 1);
    assert_int_equal(rd32(m, RES_VEC), vec);
    assert_int_equal(rd32(m, RES_TOP), top);
}

/* ------------------------------------------------------------------ */
/* Programs. */

/* ------------------------------------------------------------------ */
/* Mode switches, far transfers, segments. */

static void test_real_protected_real_round_trip(void **state)
{
    struct machine *m = machine_new();
    struct x86emu *cpu = &m->cpu;

    poke(m, CODE0, code_round_trip, sizeof(code_round_trip));
    x86emu_load_segment_real(cpu, X86EMU_SEG_CS, CODE0 >> 4);
    cpu->eip = 0;
    run_to_halt(m);
    /* 32-bit code and data segments worked... */
    assert_int_equal(rd32(m, DATA), 0x12345678);
    assert_int_equal(rd32(m, DATA + 4), STACK0 - 4);
    /* ...the 16-bit code segment pushed a word... */
    assert_int_equal(rd32(m, DATA + 8), STACK0 - 6);
    /* ...and real mode is back, with DS keeping its 4 GiB limit from
     * protected mode ("unreal" mode) after a real-mode reload. */
    assert_int_equal(cpu->cr0 & X86EMU_CR0_PE, 0);
    assert_int_equal(cpu->seg[X86EMU_SEG_CS].selector, CODE0 >> 4);
    assert_int_equal(cpu->seg[X86EMU_SEG_CS].base, CODE0);
    assert_int_equal(cpu->seg[X86EMU_SEG_DS].base, 0);
    assert_int_equal(cpu->seg[X86EMU_SEG_DS].limit, 0xffffffffu);
    assert_int_equal(rd32(m, 0x100000), 0x55aa55aa);
    machine_free(m);
}

static void test_far_call_and_return_same_privilege(void **state)
{
    struct machine *m = machine_new();

    poke(m, CODE0, code_far_call, sizeof(code_far_call));
    enter_pm(m, 0, CODE0);
    run_to_halt(m);
    assert_int_equal(rd32(m, DATA), 0x1234);
    assert_int_equal(rd32(m, DATA + 4), STACK0);
    /* RETF 8 released the two pushed parameters. */
    assert_int_equal(rd32(m, DATA + 8), STACK0);
    assert_int_equal(m->cpu.gpr[X86EMU_ECX], 0x77);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector, SEL_CODE0);
    machine_free(m);
}

enum load_kind { LOAD_DS, LOAD_SS, JMP_FAR, CALL_FAR };

struct load_case {
    enum load_kind kind;
    unsigned cpl;
    uint16_t sel;
    uint32_t off;
    unsigned vec;   /* 0: no fault */
    uint32_t err;
};

static void test_descriptor_checks(void **state)
{
    static const struct load_case cases[] = {
        /* Within the rules. */
        {LOAD_DS, 0, SEL_DATA0, 0, 0, 0},
        {LOAD_DS, 0, SEL_CODE0, 0, 0, 0},          /* readable code */
        {LOAD_DS, 0, 0, 0, 0, 0},                  /* null is fine */
        {LOAD_DS, 3, SEL_DATA3 | 3, 0, 0, 0},
        {LOAD_SS, 0, SEL_DATA0, 0, 0, 0},
        /* Null SS. */
        {LOAD_SS, 0, 0, 0, 13, 0},
        {LOAD_SS, 0, 3, 0, 13, 0},
        /* Beyond the GDT limit, or the LDT when none is loaded. */
        {LOAD_DS, 0, 0x1000, 0, 13, 0x1000},
        {LOAD_DS, 0, GDT_ENTRIES * 8, 0, 13, GDT_ENTRIES * 8},
        {LOAD_DS, 0, 0x0c, 0, 13, 0x0c},
        /* Not present: #NP, or #SS for SS. */
        {LOAD_DS, 0, SEL_NOT_PRESENT, 0, 11, SEL_NOT_PRESENT},
        {LOAD_DS, 0, SEL_CODE_NP, 0, 11, SEL_CODE_NP},
        {LOAD_SS, 0, SEL_NOT_PRESENT, 0, 12, SEL_NOT_PRESENT},
        /* Wrong type. */
        {LOAD_DS, 0, SEL_TSS, 0, 13, SEL_TSS},
        {LOAD_SS, 0, SEL_READ_ONLY, 0, 13, SEL_READ_ONLY},
        {LOAD_SS, 0, SEL_CODE0, 0, 13, SEL_CODE0},
        /* DPL/RPL: RPL 3 on a DPL 0 segment, ring 3 on DPL 0 data, SS with
         * RPL != CPL or DPL != CPL. */
        {LOAD_DS, 0, SEL_DATA0 | 3, 0, 13, SEL_DATA0},
        {LOAD_DS, 3, SEL_DATA0, 0, 13, SEL_DATA0},
        {LOAD_SS, 0, SEL_DATA3 | 3, 0, 13, SEL_DATA3},
        {LOAD_SS, 0, SEL_DATA3, 0, 13, SEL_DATA3},
        {LOAD_SS, 3, SEL_DATA0 | 3, 0, 13, SEL_DATA0},
        /* Far JMP/CALL targets. */
        {JMP_FAR, 0, 0, 0, 13, 0},
        {JMP_FAR, 0, SEL_CODE_NP, 0, 11, SEL_CODE_NP},
        {JMP_FAR, 0, SEL_DATA0, 0, 13, SEL_DATA0},
        {JMP_FAR, 0, SEL_CODE3 | 3, CODE3, 13, SEL_CODE3},
        {JMP_FAR, 0, SEL_CODE16, 0x10000, 13, 0},  /* beyond the limit */
        {JMP_FAR, 0, 0x1000, 0, 13, 0x1000},
        {CALL_FAR, 3, SEL_CODE0, CODE0, 13, SEL_CODE0},
        {CALL_FAR, 0, SEL_READ_ONLY, 0, 13, SEL_READ_ONLY},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct load_case *c = &cases[i];
        struct machine *m = machine_new();

        switch (c->kind) {
        case LOAD_DS:
            poke(m, CODE0, code_load_ds, sizeof(code_load_ds));
            break;
        case LOAD_SS:
            poke(m, CODE0, code_load_ss, sizeof(code_load_ss));
            break;
        case JMP_FAR:
            poke(m, CODE0, code_jmp_far, sizeof(code_jmp_far));
            break;
        default:
            poke(m, CODE0, code_call_far, sizeof(code_call_far));
            break;
        }
        wr16(m, ARG, c->sel);
        wr32(m, ARG + 4, c->off);
        wr16(m, ARG + 8, c->sel);
        enter_pm(m, c->cpl, CODE0);
        run_to_halt(m);
        if (!c->vec) {
            /* The program ended with INT 43h. */
            assert_int_equal(rd32(m, RES_DONE), 1);
            assert_int_equal(rd32(m, RES_VEC), 0x43);
        } else {
            if (rd32(m, RES_VEC) != c->vec || rd32(m, RES_TOP) != c->err)
                fail_msg("case %zu: vector %u error %#x, expected %u %#x", i,
                         rd32(m, RES_VEC), rd32(m, RES_TOP), c->vec, c->err);
            assert_int_equal(rd32(m, RES_COUNT), 1);
            /* A fault: the saved EIP is the faulting instruction's, and
             * the handler ran on the ring-0 stack. */
            assert_int_equal(rd32(m, RES_ESP),
                             STACK0 - (c->cpl ? 24 : 16));
            assert_int_equal(rd32(m, RES_DONE), 0);
        }
        machine_free(m);
    }
}

static void test_null_selector_use(void **state)
{
    struct machine *m = machine_new();

    poke(m, CODE0, code_use_null_ds, sizeof(code_use_null_ds));
    enter_pm(m, 0, CODE0);
    expect_vector(m, 13, 0);
    assert_int_equal(rd32(m, RES_TOP4), CODE0 + 4); /* the MOV EAX, [0] */
    machine_free(m);
}

static void test_accessed_bit_set_on_load(void **state)
{
    struct machine *m = machine_new();

    m->ram[GDT + 2 * 8 + 5] &= ~1; /* SEL_DATA0 not yet accessed */
    poke(m, CODE0, code_load_ds, sizeof(code_load_ds));
    wr16(m, ARG, SEL_DATA0);
    enter_pm(m, 0, CODE0);
    run_to_halt(m);
    assert_int_equal(rd32(m, RES_DONE), 1);
    assert_int_equal(m->ram[GDT + 2 * 8 + 5], ACC_DATA0);
    machine_free(m);
}

struct limit_case {
    uint16_t sel;
    uint32_t off;
    bool ok;
};

static void test_expand_down_and_granularity(void **state)
{
    static const struct limit_case cases[] = {
        /* Expand-down, 16-bit (B=0), limit 0xfff: 0x1000-0xffff. */
        {SEL_EXPDOWN16, 0x0800, false},
        {SEL_EXPDOWN16, 0x0fff, false},
        {SEL_EXPDOWN16, 0x1000, true},
        {SEL_EXPDOWN16, 0xfffe, true},
        {SEL_EXPDOWN16, 0xffff, false}, /* the word's second byte is out */
        /* Expand-down, B=1: 0x1000-0xffffffff. */
        {SEL_EXPDOWN32, 0x10000, true},
        {SEL_EXPDOWN32, 0xfff, false},
        /* G=1 with a limit of 0: 0-0xfff. */
        {SEL_PAGE_GRAN, 0xffe, true},
        {SEL_PAGE_GRAN, 0xfff, false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct limit_case *c = &cases[i];
        struct machine *m = machine_new();

        poke(m, CODE0, code_expand_down, sizeof(code_expand_down));
        wr16(m, ARG, c->sel);
        wr32(m, ARG + 8, c->off);
        if (c->off < 0x100000)
            wr16(m, DATA + c->off, (uint16_t)(0xa000 + i));
        enter_pm(m, 0, CODE0);
        run_to_halt(m);
        if (c->ok) {
            if (rd32(m, RES_DONE) != 1)
                fail_msg("case %zu: faulted (vector %u)", i, rd32(m, RES_VEC));
            assert_int_equal(rd32(m, RES_VALUE) & 0xffff, 0xa000 + i);
        } else {
            if (rd32(m, RES_VEC) != 13 || rd32(m, RES_TOP) != 0)
                fail_msg("case %zu: vector %u error %#x", i, rd32(m, RES_VEC),
                         rd32(m, RES_TOP));
        }
        machine_free(m);
    }
}

/* ------------------------------------------------------------------ */
/* Interrupts and privilege. */

static void test_interrupt_and_trap_gates(void **state)
{
    struct machine *m = machine_new();

    poke(m, CODE0, code_gates_if, sizeof(code_gates_if));
    poke(m, HANDLER, handler_gate_flags, sizeof(handler_gate_flags));
    set_idt_gate(m, 0x40, HANDLER, 0xe, 0); /* interrupt gate */
    set_idt_gate(m, 0x41, HANDLER, 0xf, 0); /* trap gate */
    enter_pm(m, 0, CODE0);
    m->cpu.gpr[X86EMU_EBX] = DATA;
    run_to_halt(m);
    /* Inside the interrupt gate's handler IF was clear, in the trap
     * gate's it was still set; both saw IF=1 pushed, and IRET put it
     * back. */
    assert_int_equal(rd32(m, DATA) & X86EMU_FLAG_IF, 0);
    assert_int_equal(rd32(m, DATA + 4) & X86EMU_FLAG_IF, X86EMU_FLAG_IF);
    assert_int_equal(rd32(m, DATA + 8) & X86EMU_FLAG_IF, X86EMU_FLAG_IF);
    assert_int_equal(rd32(m, DATA + 12) & X86EMU_FLAG_IF, X86EMU_FLAG_IF);
    assert_int_equal(rd32(m, DATA + 16) & X86EMU_FLAG_IF, X86EMU_FLAG_IF);
    machine_free(m);
}

static void test_int_n_gate_dpl(void **state)
{
    struct machine *m = machine_new();

    poke(m, CODE3, r3_int40, sizeof(r3_int40));
    set_idt_gate(m, 0x40, STUBS + 0x40 * STUB_SIZE, 0xe, 0);
    enter_pm(m, 3, CODE3);
    /* #GP(vector * 8 + 2): the IDT bit, no EXT. */
    expect_vector(m, 13, 0x40 * 8 + 2);
    assert_int_equal(rd32(m, RES_TOP4), CODE3);
    machine_free(m);
}

static void test_ring3_interrupt_stack_switch_and_iret(void **state)
{
    struct machine *m = machine_new();

    poke(m, CODE0, code_to_ring3, sizeof(code_to_ring3));
    poke(m, CODE3, r3_int_roundtrip, sizeof(r3_int_roundtrip));
    poke(m, HANDLER, handler_ring0_iret, sizeof(handler_ring0_iret));
    set_idt_gate(m, 0x42, HANDLER, 0xe, 3);
    enter_pm(m, 0, CODE0);
    m->cpu.tr.selector = 0;
    m->cpu.tr.attr = 0; /* the program loads TR itself */
    expect_vector(m, 0x43, CODE3 + sizeof(r3_int_roundtrip));
    /* LTR marked the TSS busy. */
    assert_int_equal(m->ram[GDT + 5 * 8 + 5], 0x8b);
    /* The ring-0 handler ran on the TSS stack: SS:ESP, EFLAGS, CS, EIP
     * of ring 3 below STACK0. */
    assert_int_equal(rd32(m, DATA), STACK0 - 20);
    assert_int_equal(rd32(m, DATA + 4), SEL_DATA0);
    assert_int_equal(rd32(m, DATA + 8), SEL_CODE0);
    assert_int_equal(rd32(m, STACK0 - 4), SEL_DATA3 | 3);
    assert_int_equal(rd32(m, STACK0 - 8), STACK3);
    assert_int_equal(rd32(m, STACK0 - 16), SEL_CODE3 | 3);
    /* IRET went back to ring 3 with its stack. */
    assert_int_equal(rd32(m, DATA + 0x100), 0x2222);
    assert_int_equal(rd32(m, DATA + 0x104), STACK3);
    assert_int_equal(rd16(m, DATA + 0x108), SEL_DATA3 | 3);
    assert_int_equal(rd16(m, DATA + 0x10c), SEL_CODE3 | 3);
    /* The second interrupt (to the stub) switched stacks again. */
    assert_int_equal(rd32(m, RES_ESP), STACK0 - 20);
    machine_free(m);
}

struct ring3_case {
    const uint8_t *code;
    size_t len;
    uint32_t eflags;     /* IOPL */
    bool bitmap;         /* give the TSS an I/O bitmap allowing port 0x80 */
    unsigned vec;
    uint32_t err;
};

static void test_ring3_privileged_instructions(void **state)
{
    const struct ring3_case cases[] = {
        {r3_cli, sizeof(r3_cli), 0x002, false, 13, 0},
        {r3_sti, sizeof(r3_sti), 0x002, false, 13, 0},
        {r3_cli, sizeof(r3_cli), 0x3002, false, 0x43, CODE3 + 3},
        {r3_hlt, sizeof(r3_hlt), 0x3002, false, 13, 0},
        {r3_mov_cr0, sizeof(r3_mov_cr0), 0x002, false, 13, 0},
        {r3_out, sizeof(r3_out), 0x002, false, 13, 0},
        {r3_out, sizeof(r3_out), 0x3002, false, 0x43, CODE3 + 6},
        {r3_out, sizeof(r3_out), 0x002, true, 0x43, CODE3 + 6},
        {r3_out81, sizeof(r3_out81), 0x002, true, 13, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ring3_case *c = &cases[i];
        struct machine *m = machine_new();

        poke(m, CODE3, c->code, c->len);
        enter_pm(m, 3, CODE3);
        x86emu_set_eflags(&m->cpu, c->eflags);
        if (c->bitmap) {
            /* Every port denied but 0x80; the map ends with 0xff. */
            wr16(m, TSS + 0x66, TSS_IOMAP);
            memset(m->ram + TSS + TSS_IOMAP, 0xff, 0x2001);
            m->ram[TSS + TSS_IOMAP + 0x80 / 8] = 0xfe;
            m->cpu.tr.limit = TSS_IOMAP + 0x2000;
        }
        run_to_halt(m);
        if (rd32(m, RES_VEC) != c->vec || rd32(m, RES_TOP) != c->err)
            fail_msg("case %zu: vector %u top %#x, expected %u %#x", i,
                     rd32(m, RES_VEC), rd32(m, RES_TOP), c->vec, c->err);
        if (c->vec == 0x43 && c->code == r3_out) {
            assert_int_equal(m->nio, 1);
            assert_int_equal(m->io[0].port, 0x80);
            assert_int_equal(m->io[0].value, 0x5a);
        } else if (c->code == r3_out || c->code == r3_out81) {
            assert_int_equal(m->nio, 0);
        }
        machine_free(m);
    }
}

static void test_ring3_popf_keeps_if_and_iopl(void **state)
{
    struct machine *m = machine_new();

    poke(m, CODE3, r3_popf, sizeof(r3_popf));
    enter_pm(m, 3, CODE3);
    x86emu_set_eflags(&m->cpu, 0x202);
    expect_vector(m, 0x43, CODE3 + sizeof(r3_popf));
    assert_int_equal(rd32(m, DATA) & (X86EMU_FLAG_IF | X86EMU_FLAG_IOPL),
                     X86EMU_FLAG_IF);
    machine_free(m);
}

static void test_call_gate_to_ring0_and_back(void **state)
{
    struct machine *m = machine_new();
    struct x86emu *cpu = &m->cpu;

    poke(m, CODE3, r3_call_gate, sizeof(r3_call_gate));
    poke(m, HANDLER, handler_call_gate, sizeof(handler_call_gate));
    enter_pm(m, 3, CODE3);
    expect_vector(m, 0x43, CODE3 + sizeof(r3_call_gate));
    /* Ring 0 saw the two parameters copied, then the old ESP and SS. */
    assert_int_equal(rd32(m, DATA), 0xbbbb);
    assert_int_equal(rd32(m, DATA + 4), 0xaaaa);
    assert_int_equal(rd32(m, DATA + 8), STACK3 - 8);
    assert_int_equal(rd32(m, DATA + 12), SEL_DATA3 | 3);
    assert_int_equal(rd32(m, DATA + 16), STACK0 - 24);
    assert_int_equal(rd32(m, DATA + 20), SEL_CODE0);
    /* RETF 8 returned to ring 3 and released the parameters there. */
    assert_int_equal(rd32(m, DATA + 0x100), STACK3);
    assert_int_equal(rd32(m, DATA + 0x104), 0x5a5a);
    /* ES held a DPL 0 segment: the return to ring 3 nulled it. */
    assert_int_equal(cpu->seg[X86EMU_SEG_ES].selector, 0);
    assert_int_equal(cpu->seg[X86EMU_SEG_DS].selector, SEL_DATA3 | 3);
    machine_free(m);
}

static void test_descriptor_instructions(void **state)
{
    struct machine *m = machine_new();

    poke(m, CODE0, code_descriptor_insns, sizeof(code_descriptor_insns));
    wr32(m, DATA + 0x20, 0x600dcafe);
    enter_pm(m, 0, CODE0);
    run_to_halt(m);
    /* LAR: access rights and flags (the limit nibble is masked). */
    assert_int_equal(rd32(m, DATA), 0x00c09100);
    assert_int_equal(m->ram[DATA + 4], 1);
    assert_int_equal(rd32(m, DATA + 0x14), 0xfff);    /* LSL, G=1 */
    assert_int_equal(m->ram[DATA + 8], 0);            /* VERW code */
    assert_int_equal(m->ram[DATA + 9], 1);            /* VERR code */
    assert_int_equal(m->ram[DATA + 10], 1);           /* VERW data */
    assert_int_equal(m->ram[DATA + 11], 0);           /* LAR bad sel */
    assert_int_equal(rd16(m, DATA + 12), SEL_LDT);    /* SLDT */
    assert_int_equal(rd16(m, DATA + 14), SEL_TSS);    /* STR */
    assert_int_equal(m->ram[DATA + 16], 1);           /* ARPL adjusted */
    assert_int_equal(rd16(m, DATA + 18), SEL_DATA0 | 3);
    assert_int_equal(rd32(m, DATA + 0x18), 0x600dcafe); /* via the LDT */
    machine_free(m);
}

static void test_task_switch_and_v86_unsupported(void **state)
{
    struct machine *m = machine_new();

    poke(m, CODE0, code_task_gate, sizeof(code_task_gate));
    enter_pm(m, 0, CODE0);
    assert_int_equal(x86emu_run(&m->cpu, 100), X86EMU_STOP_UNSUPPORTED);
    assert_int_equal(m->cpu.eip, CODE0 + 5); /* at the JMP, not past it */
    assert_int_equal(m->cpu.gpr[X86EMU_EBX], 1);
    assert_int_equal(x86emu_run(&m->cpu, 100), X86EMU_STOP_UNSUPPORTED);
    machine_free(m);

    m = machine_new();
    poke(m, CODE0, code_iret_vm, sizeof(code_iret_vm));
    enter_pm(m, 0, CODE0);
    assert_int_equal(x86emu_run(&m->cpu, 100), X86EMU_STOP_UNSUPPORTED);
    assert_int_equal(m->cpu.eip, CODE0 + sizeof(code_iret_vm) - 1);
    assert_int_equal(x86emu_get_eflags(&m->cpu) & X86EMU_FLAG_VM, 0);
    machine_free(m);
}

/* ------------------------------------------------------------------ */
/* Exceptions. */

static void test_16bit_interrupt_gate(void **state)
{
    struct machine *m = machine_new();

    /* INT 44h through a 16-bit interrupt gate into a 16-bit code segment
     * (based at CODE0): 16-bit FLAGS, CS and IP are pushed, and a 16-bit
     * IRET returns to the 32-bit code. Only IP is saved, so the 32-bit
     * code runs below 64 KiB. */
    poke(m, LOW_CODE, code_gate16, sizeof(code_gate16));
    poke(m, CODE0 + 0x1000, handler_gate16, sizeof(handler_gate16));
    set_gate(m, IDT + 0x44 * 8, SEL_CODE16, 0x1000, 0x6, 0, true, 0);
    enter_pm(m, 0, LOW_CODE);
    run_to_halt(m);
    assert_int_equal(rd32(m, DATA + 8), STACK0 - 6);
    assert_int_equal(m->cpu.gpr[X86EMU_EBX], SEL_CODE0 << 16 | (LOW_CODE + 2));
    assert_int_equal(rd32(m, DATA + 4), STACK0);
    assert_int_equal(m->cpu.seg[X86EMU_SEG_CS].selector, SEL_CODE0);
    machine_free(m);
}

struct ts_case {
    uint16_t ss0;
    bool external;
    unsigned vec;
    uint32_t err;
};

static void test_bad_tss_stack(void **state)
{
    static const struct ts_case cases[] = {
        {0, false, 10, 0},                              /* null SS0 */
        {SEL_READ_ONLY, false, 10, SEL_READ_ONLY},      /* wrong type */
        {SEL_DATA3, false, 10, SEL_DATA3},              /* RPL/DPL != 0 */
        {0x1000, false, 10, 0x1000},                    /* beyond the GDT */
        {SEL_NOT_PRESENT, false, 12, SEL_NOT_PRESENT},  /* not present */
        {0, true, 10, 1},                               /* EXT */
        {SEL_NOT_PRESENT, true, 12, SEL_NOT_PRESENT | 1},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ts_case *c = &cases[i];
        struct machine *m = machine_new();

        /* #TS and #SS go to handlers in a conforming segment, which run at
         * CPL 3 on the ring-3 stack (no stack switch, which would fail
         * again) and spin instead of halting. */
        for (unsigned v = 10; v <= 12; v += 2) {
            set_gate(m, IDT + v * 8, SEL_CONFORMING, STUBS + v * STUB_SIZE,
                     0xe, 3, true, 0);
            m->ram[STUBS + v * STUB_SIZE + sizeof(pm_stub) - 1] = 0xeb;
            m->ram[STUBS + v * STUB_SIZE + sizeof(pm_stub)] = 0xfe;
        }
        wr32(m, TSS + 8, c->ss0);
        if (c->external) {
            poke(m, CODE3, r3_spin, sizeof(r3_spin));
            enter_pm(m, 3, CODE3);
            x86emu_set_eflags(&m->cpu, 0x202);
            m->pending_vector = 0x42;
            x86emu_set_intr(&m->cpu, true);
        } else {
            poke(m, CODE3, r3_int42, sizeof(r3_int42));
            enter_pm(m, 3, CODE3);
        }
        assert_int_equal(x86emu_run(&m->cpu, 1000), X86EMU_STOP_BUDGET);
        if (rd32(m, RES_VEC) != c->vec || rd32(m, RES_TOP) != c->err)
            fail_msg("case %zu: vector %u error %#x", i, rd32(m, RES_VEC),
                     rd32(m, RES_TOP));
        assert_int_equal(rd32(m, RES_COUNT), 1);
        assert_int_equal(rd32(m, RES_TOP4), CODE3); /* at the INT */
        assert_int_equal(rd32(m, RES_ESP), STACK3 - 16);
        machine_free(m);
    }
}

static void test_double_fault_and_shutdown(void **state)
{
    struct machine *m = machine_new();

    /* #GP's gate is not present: delivering #GP raises #NP, two
     * contributory faults make #DF with error code 0. */
    poke(m, CODE0, code_gp_ss, sizeof(code_gp_ss));
    set_gate(m, IDT + 13 * 8, SEL_CODE0, STUBS + 13 * STUB_SIZE, 0xe, 0,
             false, 0);
    enter_pm(m, 0, CODE0);
    expect_vector(m, 8, 0);
    assert_int_equal(rd32(m, RES_TOP4), CODE0 + 2);
    machine_free(m);

    /* And if #DF cannot be delivered either: shutdown. */
    m = machine_new();
    poke(m, CODE0, code_gp_ss, sizeof(code_gp_ss));
    set_gate(m, IDT + 13 * 8, SEL_CODE0, STUBS + 13 * STUB_SIZE, 0xe, 0,
             false, 0);
    set_gate(m, IDT + 8 * 8, SEL_CODE0, STUBS + 8 * STUB_SIZE, 0xe, 0, false,
             0);
    enter_pm(m, 0, CODE0);
    assert_int_equal(x86emu_run(&m->cpu, 1000), X86EMU_STOP_SHUTDOWN);
    assert_int_equal(rd32(m, RES_COUNT), 0);
    machine_free(m);
}

static void test_external_interrupt_fault_has_ext(void **state)
{
    struct machine *m = machine_new();

    /* An external interrupt's gate names a code segment that is not
     * present: #NP with that selector and EXT set. */
    poke(m, CODE0, code_gates_if, sizeof(code_gates_if));
    set_gate(m, IDT + 0x50 * 8, SEL_CODE_NP, 0, 0xe, 0, true, 0);
    enter_pm(m, 0, CODE0);
    x86emu_set_eflags(&m->cpu, 0x202);
    m->pending_vector = 0x50;
    x86emu_set_intr(&m->cpu, true);
    expect_vector(m, 11, SEL_CODE_NP | 1);
    /* Reported at the instruction the interrupt came before. */
    assert_int_equal(rd32(m, RES_TOP4), CODE0);
    machine_free(m);
}

/* ------------------------------------------------------------------ */
/* Paging. */

static void test_paging_4k_and_4m_pages(void **state)
{
    struct machine *m = machine_new();

    poke(m, CODE0, code_enable_paging, sizeof(code_enable_paging));
    enter_pm(m, 0, CODE0);
    run_to_halt(m);
    assert_int_equal(m->cpu.cr0 & X86EMU_CR0_PG, X86EMU_CR0_PG);
    /* Written through the alias at 12 MiB, read back through 4 MiB. */
    assert_int_equal(rd32(m, 0x400010), 0xfeedf00d);
    assert_int_equal(rd32(m, DATA), 0xfeedf00d);
    /* Accessed and dirty bits: the written 4 MiB page is dirty, the read
     * one only accessed; the data page is dirty, the code page not. */
    assert_int_equal(rd32(m, PD + 12) & 0x60, 0x60);
    assert_int_equal(rd32(m, PD + 4) & 0x60, 0x20);
    assert_int_equal(rd32(m, PD) & 0x20, 0x20);
    assert_int_equal(rd32(m, PT0 + (DATA >> 12) * 4) & 0x60, 0x60);
    assert_int_equal(rd32(m, PT0 + (CODE0 >> 12) * 4) & 0x60, 0x20);
    machine_free(m);
}

struct pf_case {
    unsigned cpl;
    bool write;
    bool rmw;
    uint32_t pte;       /* for the page at 0x200000 */
    bool wp;
    unsigned vec;       /* 14, or 0x43 when the access succeeds */
    uint32_t err;
};

static void test_page_faults(void **state)
{
    static const struct pf_case cases[] = {
        {0, false, false, 0x200000, false, 14, 0},   /* not present */
        {0, true, false, 0x200000, false, 14, 2},
        {3, false, false, 0x200000, false, 14, 4},
        {3, true, false, 0x200000, false, 14, 6},
        {3, false, false, 0x200003, false, 14, 5},   /* supervisor page */
        {3, true, false, 0x200005, false, 14, 7},    /* read-only */
        {3, true, true, 0x200005, false, 14, 7},     /* RMW: no flags */
        {3, false, false, 0x200005, false, 0x43, 0},
        {0, true, false, 0x200005, false, 0x43, 0},  /* WP=0: allowed */
        {0, true, false, 0x200005, true, 14, 3},     /* WP=1 */
        {0, true, true, 0x200001, true, 14, 3},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct pf_case *c = &cases[i];
        struct machine *m = machine_new();
        const uint8_t *code = c->rmw     ? code_pf_rmw
                              : c->write ? code_pf_write
                                         : code_pf_read;
        size_t len = c->rmw     ? sizeof(code_pf_rmw)
                     : c->write ? sizeof(code_pf_write)
                                : sizeof(code_pf_read);

        poke(m, c->cpl ? CODE3 : CODE0, code, len);
        wr32(m, PT0 + 0x200 * 4, c->pte);
        wr32(m, ARG, 0x200123);
        enter_pm(m, c->cpl, c->cpl ? CODE3 : CODE0);
        enable_paging(m);
        if (c->wp)
            m->cpu.cr0 |= X86EMU_CR0_WP;
        run_to_halt(m);
        if (rd32(m, RES_VEC) != c->vec)
            fail_msg("case %zu: vector %u", i, rd32(m, RES_VEC));
        if (c->vec == 14) {
            if (rd32(m, RES_TOP) != c->err)
                fail_msg("case %zu: error %#x", i, rd32(m, RES_TOP));
            assert_int_equal(m->cpu.cr2, 0x200123);
            assert_int_equal(rd32(m, ARG + 4), 0);
            if (c->rmw) /* ZF from CMP survived the faulting ADD */
                assert_true(rd32(m, RES_TOP12) & X86EMU_FLAG_ZF);
        } else {
            assert_int_equal(rd32(m, ARG + 4), 1);
        }
        machine_free(m);
    }
}

static void test_instruction_fetch_at_page_end(void **state)
{
    struct machine *m = machine_new();

    /* The page after the code is not present. An instruction that ends
     * on the page's last byte runs... */
    poke(m, 0x21000 - sizeof(code_page_end), code_page_end,
         sizeof(code_page_end));
    wr32(m, PT0 + 0x21 * 4, 0);
    enter_pm(m, 0, 0x21000 - sizeof(code_page_end));
    enable_paging(m);
    expect_vector(m, 0x43, 0x21000);
    assert_int_equal(m->cpu.gpr[X86EMU_EBX], 1);
    machine_free(m);

    /* ...one that straddles into it faults on the missing page, with the
     * instruction's own address saved. */
    m = machine_new();
    poke(m, 0x20ffd, code_straddle, sizeof(code_straddle));
    wr32(m, PT0 + 0x21 * 4, 0);
    enter_pm(m, 0, 0x20ffd);
    enable_paging(m);
    expect_vector(m, 14, 0);
    assert_int_equal(rd32(m, RES_TOP4), 0x20ffd);
    assert_int_equal(m->cpu.cr2, 0x21000);
    machine_free(m);

    /* Ring 3 fetching from a supervisor page. */
    m = machine_new();
    poke(m, CODE3, r3_spin, sizeof(r3_spin));
    wr32(m, PT0 + (CODE3 >> 12) * 4, CODE3 | 3);
    enter_pm(m, 3, CODE3);
    enable_paging(m);
    expect_vector(m, 14, 5);
    assert_int_equal(m->cpu.cr2, CODE3);
    machine_free(m);
}

static void test_page_crossing_write_checks_both_pages(void **state)
{
    struct machine *m = machine_new();

    /* A dword at 0x200ffe: its first half is writable, its second page is
     * not present. Nothing is written. */
    poke(m, CODE0, code_pf_write, sizeof(code_pf_write));
    wr32(m, PT0 + 0x201 * 4, 0);
    wr32(m, ARG, 0x200ffe);
    wr16(m, 0x200ffe, 0x1111);
    enter_pm(m, 0, CODE0);
    m->cpu.gpr[X86EMU_EBX] = 0xaaaaaaaa;
    enable_paging(m);
    expect_vector(m, 14, 2);
    assert_int_equal(m->cpu.cr2, 0x201000);
    assert_int_equal(rd16(m, 0x200ffe), 0x1111);
    machine_free(m);
}

static void test_invlpg_and_cr3_flush(void **state)
{
    struct machine *m = machine_new();

    poke(m, CODE0, code_invlpg, sizeof(code_invlpg));
    wr32(m, 0x300000, 0xaaaaaaaa);
    wr32(m, 0x301000, 0xbbbbbbbb);
    wr32(m, 0x400000, 0xcccccccc);
    enter_pm(m, 0, CODE0);
    enable_paging(m);
    run_to_halt(m);
    assert_int_equal(rd32(m, DATA), 0xaaaaaaaa);
    /* The PTE changed but the TLB may (and does) keep the old
     * translation until INVLPG; then the new one is used, and a CR3
     * reload flushes too. */
    assert_int_equal(rd32(m, DATA + 4), 0xaaaaaaaa);
    assert_int_equal(rd32(m, DATA + 8), 0xbbbbbbbb);
    assert_int_equal(rd32(m, DATA + 12), 0xaaaaaaaa);
    /* INVLPG on a 4 MiB page: the remapped PDE (to 8 MiB, beyond RAM,
     * where the machine reads all ones) is seen. */
    assert_int_equal(rd32(m, DATA + 16), 0xcccccccc);
    assert_int_equal(rd32(m, DATA + 20), 0xffffffff);
    machine_free(m);
}

static void test_page_fault_during_page_fault_is_double_fault(void **state)
{
    struct machine *m = machine_new();
    const uint32_t idt = 0x5fa0; /* entry 8 in page 5, entry 14 in page 6 */

    poke(m, CODE0, code_pf_read, sizeof(code_pf_read));
    memcpy(m->ram + idt, m->ram + IDT, 256 * 8);
    wr32(m, PT0 + 0x200 * 4, 0);
    wr32(m, PT0 + 6 * 4, 0);
    wr32(m, ARG, 0x200123);
    enter_pm(m, 0, CODE0);
    m->cpu.idtr.base = idt;
    enable_paging(m);
    expect_vector(m, 8, 0);
    /* CR2 holds the second fault's address: the IDT entry. */
    assert_int_equal(m->cpu.cr2, idt + 14 * 8);
    machine_free(m);
}

/* ------------------------------------------------------------------ */
/* CPUID, FPU, 486 instructions. */

static void test_cpuid(void **state)
{
    struct machine *m = machine_new();
    char vendor[13];

    poke(m, CODE0, code_cpuid, sizeof(code_cpuid));
    enter_pm(m, 0, CODE0);
    run_to_halt(m);
    assert_int_equal(rd32(m, DATA), 1);
    memcpy(vendor, m->ram + DATA + 4, 12);
    vendor[12] = 0;
    assert_string_equal(vendor, "XenDM x86emu");
    assert_int_equal(rd32(m, DATA + 16), 0x480);  /* family 4 */
    assert_int_equal(rd32(m, DATA + 20), 1u << 3); /* PSE only: no FPU, no APIC */
    assert_int_equal(rd32(m, DATA + 24), 0);       /* EFLAGS.ID toggled */
    machine_free(m);

    m = machine_new();
    m->cpu.cpuid_apic = true;
    x86emu_reset(&m->cpu);
    poke(m, CODE0, code_cpuid, sizeof(code_cpuid));
    enter_pm(m, 0, CODE0);
    run_to_halt(m);
    assert_int_equal(rd32(m, DATA + 20), 1u << 3 | 1u << 9);
    machine_free(m);
}

static void test_fpu_absent_nm(void **state)
{
    static const struct {
        uint32_t cr0;
        unsigned vec;
        uint32_t where; /* last progress marker */
    } cases[] = {
        {X86EMU_CR0_PE, 0x43, 2},                      /* ESC ignored */
        {X86EMU_CR0_PE | X86EMU_CR0_EM, 7, 0},
        {X86EMU_CR0_PE | X86EMU_CR0_TS, 7, 0},
        {X86EMU_CR0_PE | X86EMU_CR0_MP | X86EMU_CR0_EM, 7, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct machine *m = machine_new();

        poke(m, CODE0, code_fpu, sizeof(code_fpu));
        wr32(m, ARG, cases[i].cr0);
        enter_pm(m, 0, CODE0);
        run_to_halt(m);
        assert_int_equal(rd32(m, RES_VEC), cases[i].vec);
        assert_int_equal(rd32(m, ARG + 4), cases[i].where);
        machine_free(m);
    }
}

static void test_wait_with_mp_and_ts(void **state)
{
    static const struct {
        uint32_t cr0;
        unsigned vec;
    } cases[] = {
        {X86EMU_CR0_PE | X86EMU_CR0_TS, 0x43},   /* TS alone: WAIT runs */
        {X86EMU_CR0_PE | X86EMU_CR0_EM, 0x43},   /* EM does not matter */
        {X86EMU_CR0_PE | X86EMU_CR0_MP | X86EMU_CR0_TS, 7},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct machine *m = machine_new();

        poke(m, CODE0, code_wait, sizeof(code_wait));
        wr32(m, ARG, cases[i].cr0);
        enter_pm(m, 0, CODE0);
        run_to_halt(m);
        assert_int_equal(rd32(m, RES_VEC), cases[i].vec);
        if (cases[i].vec == 7)
            assert_int_equal(rd32(m, RES_TOP), CODE0 + 8); /* the WAIT */
        machine_free(m);
    }
}

static void test_486_instructions(void **state)
{
    struct machine *m = machine_new();

    poke(m, CODE0, code_486, sizeof(code_486));
    enter_pm(m, 0, CODE0);
    run_to_halt(m);
    assert_int_equal(rd32(m, DATA), 0x44332211);     /* BSWAP */
    assert_int_equal(m->ram[DATA + 8], 1);           /* CMPXCHG equal */
    assert_int_equal(m->ram[DATA + 9], 0);           /* then not */
    assert_int_equal(rd32(m, DATA + 12), 9);         /* EAX = old dest */
    assert_int_equal(rd32(m, DATA + 4), 12);         /* XADD: 9 + 3 */
    assert_int_equal(rd32(m, DATA + 16), 9);
    machine_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_protected_real_round_trip),
        cmocka_unit_test(test_far_call_and_return_same_privilege),
        cmocka_unit_test(test_descriptor_checks),
        cmocka_unit_test(test_null_selector_use),
        cmocka_unit_test(test_accessed_bit_set_on_load),
        cmocka_unit_test(test_expand_down_and_granularity),
        cmocka_unit_test(test_interrupt_and_trap_gates),
        cmocka_unit_test(test_int_n_gate_dpl),
        cmocka_unit_test(test_ring3_interrupt_stack_switch_and_iret),
        cmocka_unit_test(test_ring3_privileged_instructions),
        cmocka_unit_test(test_ring3_popf_keeps_if_and_iopl),
        cmocka_unit_test(test_call_gate_to_ring0_and_back),
        cmocka_unit_test(test_descriptor_instructions),
        cmocka_unit_test(test_task_switch_and_v86_unsupported),
        cmocka_unit_test(test_16bit_interrupt_gate),
        cmocka_unit_test(test_bad_tss_stack),
        cmocka_unit_test(test_double_fault_and_shutdown),
        cmocka_unit_test(test_external_interrupt_fault_has_ext),
        cmocka_unit_test(test_paging_4k_and_4m_pages),
        cmocka_unit_test(test_page_faults),
        cmocka_unit_test(test_instruction_fetch_at_page_end),
        cmocka_unit_test(test_page_crossing_write_checks_both_pages),
        cmocka_unit_test(test_invlpg_and_cr3_flush),
        cmocka_unit_test(test_page_fault_during_page_fault_is_double_fault),
        cmocka_unit_test(test_cpuid),
        cmocka_unit_test(test_fpu_absent_nm),
        cmocka_unit_test(test_wait_with_mp_and_ts),
        cmocka_unit_test(test_486_instructions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
