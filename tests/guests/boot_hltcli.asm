; Says so on COM1, then halts with interrupts disabled: nothing can wake it,
; and the host must not spin.
%include "boot_common.inc"
main:
        PRINT msg
        cli
.stop:  hlt
        jmp .stop

msg:    db "halting with interrupts off", 13, 10, 0
        BOOT_END
