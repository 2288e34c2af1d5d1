; Prints a line on COM1, another on the debug console port 0xE9 and a third
; on the firmware debug port 0x402 (where SeaBIOS logs), then exits with
; status (0x10 << 1) | 1 = 33.
%include "boot_common.inc"
main:
        PRINT uart_msg
        mov si, dbg_msg
        call debugcon_puts
        mov si, fw_msg
        mov dx, 0x402
.fw:    cs lodsb
        test al, al
        jz .done
        out dx, al
        jmp .fw
.done:  EXIT 0x10

uart_msg: db "hello from the sim machine over COM1", 13, 10, 0
dbg_msg:  db "hello over the debug console", 10, 0
fw_msg:   db "hello on port 0x402", 10, 0
        BOOT_END
