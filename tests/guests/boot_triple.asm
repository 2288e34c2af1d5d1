; Prints "boot" and triple-faults: an IDT limit of 0 makes INT 3 raise #GP,
; whose delivery fails again (#DF), and once more: shutdown. QEMU's default
; (and xen-dm's) is to reset the machine, so it prints "boot" again and
; again; with -no-reboot the process exits with status 0.
%include "boot_common.inc"
main:
        PRINT msg
        lidt [cs:null_idt]
        int 3
.hang:  hlt
        jmp .hang

null_idt: dw 0
          dd 0
msg:    db "boot", 13, 10, 0
        BOOT_END
