; Guest resets and the A20 gate. A boot counter in RAM at 0x500 (RAM keeps
; its contents across a reset) picks the step:
;   boot 1: prints "boot 1", resets through the PIIX3 Reset Control
;           register (0xCF9 = 0x06: hard reset, reset CPU)
;   boot 2: prints "boot 2", checks the A20 gate of port 0x92 (masked,
;           FFFF:0510 is 0000:0500 again; enabled, it is 0x100500), then
;           resets through port 0x92 bit 0 (fast reset)
;   boot 3: prints "boot 3" and exits with (3 << 1) | 1 = 7
; A wrong A20 answer exits with (0x7f << 1) | 1.
%include "boot_common.inc"
main:
        inc word [0x500]
        PRINT msg
        mov ax, [0x500]
        add al, '0'
        call uart_putc
        mov al, 10
        call uart_putc
        cmp word [0x500], 1
        je .cf9
        cmp word [0x500], 2
        je .a20
        EXIT 3
.cf9:   mov dx, 0xcf9
        mov al, 0x06
        out dx, al
        jmp .hang
.a20:   mov ax, 0xffff
        mov es, ax
        ; Masked: FFFF:0510 = 0x100500 wraps to 0x000500, the counter.
        in al, 0x92
        and al, ~0x03
        out 0x92, al
        mov ax, [es:0x510]
        cmp ax, [0x500]
        jne fail
        ; Enabled: a different byte of RAM above 1 MiB.
        in al, 0x92
        or al, 0x02
        and al, ~0x01
        out 0x92, al
        mov word [es:0x510], 0xbeef
        cmp word [0x500], 2
        jne fail
        cmp word [es:0x510], 0xbeef
        jne fail
        ; Fast reset: bit 0 from 0 to 1.
        in al, 0x92
        or al, 0x01
        out 0x92, al
.hang:  hlt
        jmp .hang
fail:   EXIT 0x7f

msg:    db "boot ", 0
        BOOT_END
