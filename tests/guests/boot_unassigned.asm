; Hostile but harmless: writes to ports and memory where nothing is, then
; checks that reads from there return all-ones and that RAM still works.
; Exits with (1 << 1) | 1 = 3 when every check passed, else (0x7f << 1) | 1.
%include "boot_common.inc"
main:
        ; Ports nobody decodes.
        mov dx, 0x1234
        mov al, 0x5a
        out dx, al
        in al, dx
        cmp al, 0xff
        jne fail
        mov dx, 0xfff0
        mov ax, 0x1234
        out dx, ax
        in ax, dx
        cmp ax, 0xffff
        jne fail
        ; The legacy VGA window (no VGA on this machine).
        mov ax, 0xa000
        mov es, ax
        mov dword [es:0x100], 0x12345678
        cmp dword [es:0x100], 0xffffffff
        jne fail
        ; 0xC0000: no option ROM, PAM still sends it to the bus.
        mov ax, 0xc000
        mov es, ax
        mov byte [es:0], 0x42
        cmp byte [es:0], 0xff
        jne fail
        ; Writes to the firmware image are dropped.
        mov ax, 0xf000
        mov es, ax
        mov al, [es:rom_byte]
        mov byte [es:rom_byte], 0x00
        cmp byte [es:rom_byte], al
        jne fail
        ; RAM is still RAM.
        xor ax, ax
        mov es, ax
        mov dword [es:0x600], 0xcafef00d
        cmp dword [es:0x600], 0xcafef00d
        jne fail
        PRINT ok
        EXIT 1
fail:
        PRINT bad
        EXIT 0x7f

rom_byte: db 0xa5
ok:     db "unassigned: ok", 13, 10, 0
bad:    db "unassigned: FAILED", 13, 10, 0
        BOOT_END
