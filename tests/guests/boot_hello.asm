; Prints a line on COM1 and another on the debug console (0xE9), then exits
; with status (0x10 << 1) | 1 = 33.
%include "boot_common.inc"
main:
        PRINT uart_msg
        mov si, dbg_msg
        call debugcon_puts
        EXIT 0x10

uart_msg: db "hello from the sim machine over COM1", 13, 10, 0
dbg_msg:  db "hello over the debug console", 10, 0
        BOOT_END
