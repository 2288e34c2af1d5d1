; Switches to 32-bit protected mode (flat GDT), prints "pm: ok" on COM1 from
; there and exits with (0x12 << 1) | 1 = 37. On a CPU without protected
; mode the machine stops at the MOV to CR0 (QMP status internal-error).
%include "boot_common.inc"
main:
        PRINT msg_real
        lgdt [cs:gdt_desc]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        jmp dword 0x08:(0xf0000 + pm32)

bits 32
pm32:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov esp, STACK_TOP
        mov esi, 0xf0000 + msg_pm
.next:  lodsb
        test al, al
        jz .done
        mov ah, al
        mov dx, COM1 + 5
.wait:  in al, dx
        test al, 0x20
        jz .wait
        mov al, ah
        mov dx, COM1
        out dx, al
        jmp .next
.done:  mov al, 0x12
        out DEBUG_EXIT, al
.hang:  hlt
        jmp .hang
bits 16

align 8
gdt:    dq 0
        dq 0x00cf9a000000ffff   ; 0x08: code, flat, 32-bit
        dq 0x00cf92000000ffff   ; 0x10: data, flat
gdt_desc:
        dw gdt_desc - gdt - 1
        dd 0xf0000 + gdt
msg_real: db "pm: switching", 13, 10, 0
msg_pm:   db "pm: ok", 13, 10, 0
        BOOT_END
