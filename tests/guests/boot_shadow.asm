; Shadow RAM through the i440FX PAM registers, as firmware does it: copy the
; BIOS segment F000 onto itself with PAM0 = WE (reads from ROM, writes to
; RAM), switch to RE|WE and run from the RAM copy, check that it is
; writable, then RE only (writes dropped) and back to 0 (the ROM again).
; Prints "shadow: ok" and exits with (2 << 1) | 1 = 5, else with 0x7f.
%include "boot_common.inc"

PAM0_DWORD equ 0x80000058       ; bus 0, 00:00.0, register 0x58 (PAM0 = 0x59)

%macro SET_PAM0 1
        mov dx, 0xcf8
        mov eax, PAM0_DWORD
        out dx, eax
        mov dx, 0xcfd
        mov al, %1
        out dx, al
%endmacro

main:
        mov ax, 0xf000
        mov ds, ax
        mov es, ax
        SET_PAM0 0x20           ; WE: writes to RAM, reads from ROM
        xor si, si
        xor di, di
        mov cx, 0x8000
        rep movsw               ; ROM -> shadow RAM
        SET_PAM0 0x30           ; RE|WE: run from the RAM copy
        cmp byte [marker], 0xa5
        jne fail
        mov byte [marker], 0x5a ; RAM now: writable
        cmp byte [marker], 0x5a
        jne fail
        SET_PAM0 0x10           ; RE only: writes go to the ROM, dropped
        mov byte [marker], 0x77
        cmp byte [marker], 0x5a
        jne fail
        SET_PAM0 0x00           ; the ROM again
        cmp byte [marker], 0xa5
        jne fail
        xor ax, ax
        mov ds, ax
        PRINT ok
        EXIT 2
fail:
        PRINT bad
        EXIT 0x7f

marker: db 0xa5
ok:     db "shadow: ok", 13, 10, 0
bad:    db "shadow: FAILED", 13, 10, 0
        BOOT_END
