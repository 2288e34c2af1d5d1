; Asks for a hardware task switch, which x86emu does not implement: enters
; protected mode and jumps to a TSS descriptor. xen-dm stops the machine
; with QMP status internal-error; system_reset brings it back (paused).
; Prints "ts: switching" each time it gets that far.
%include "boot_common.inc"
main:
        PRINT msg
        lgdt [cs:gdt_desc]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        jmp dword 0x08:(0xf0000 + pm32)

bits 32
pm32:
        mov ax, 0x10
        mov ds, ax
        mov ss, ax
        mov esp, STACK_TOP
        jmp 0x18:0              ; a task switch
.hang:  hlt
        jmp .hang
bits 16

align 8
gdt:    dq 0
        dq 0x00cf9a000000ffff   ; 0x08: code, flat, 32-bit
        dq 0x00cf92000000ffff   ; 0x10: data, flat
        dq 0x0000890080000067   ; 0x18: available 32-bit TSS at 0x8000
gdt_desc:
        dw gdt_desc - gdt - 1
        dd 0xf0000 + gdt
msg:    db "ts: switching", 13, 10, 0
        BOOT_END
