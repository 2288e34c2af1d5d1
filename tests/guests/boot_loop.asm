; The benchmark loop: the same
; add/xor/inc/dec/jnz loop as tests/bench/bench_x86emu.c,
;   1 + OUTER * (1 + 5 * INNER + 2) + 1 instructions
; with OUTER = 400 and INNER = 50000: 100,001,202 instructions from the
; `mov di` to the exit write, and exits with status (0x2a << 1) | 1 = 85.
%include "boot_common.inc"
INNER equ 50000
OUTER equ 400
main:
        mov di, OUTER
.outer: mov cx, INNER
.inner: add ax, bx
        xor dx, ax
        inc si
        dec cx
        jnz .inner
        dec di
        jnz .outer
        EXIT 0x2a
        BOOT_END
