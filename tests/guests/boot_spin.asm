; Prints "spin N" (N = a boot counter kept in RAM at 0x500, so it survives
; a reset only if RAM does: it counts resets) and then spins forever,
; bumping a counter at 0x504, with interrupts off. The test drives it with
; QMP stop / cont / system_reset / quit.
%include "boot_common.inc"
main:
        inc word [0x500]
        PRINT msg
        mov ax, [0x500]
        call print_hex16
        mov al, 10
        call uart_putc
.spin:  add dword [0x504], 1
        jmp .spin

msg:    db "spin ", 0
        BOOT_END
