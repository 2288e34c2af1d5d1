; Interrupts end to end: programs the master 8259 (vectors 0x08-0x0F, only
; IRQ 0 unmasked) and the 8254's channel 0 for 1 kHz (rate generator,
; divisor 1193), then sleeps in HLT with interrupts on until the IRQ 0
; handler has counted TICKS ticks. Prints "pit: N ticks" and exits with
; (0x11 << 1) | 1 = 35. A machine without working interrupts never wakes.
%include "boot_common.inc"
TICKS   equ 50
ticks   equ 0x500               ; word in RAM

main:
        mov word [ticks], 0
        mov word [8 * 4], irq0_handler   ; IVT entry 8 = IRQ 0
        mov word [8 * 4 + 2], cs
        ; Master PIC: ICW1 edge, cascade, ICW4; ICW2 base 8; ICW3 slave on
        ; IR2; ICW4 8086 mode. Slave: base 0x70, cascade identity 2.
        mov al, 0x11
        out 0x20, al
        out 0xa0, al
        mov al, 0x08
        out 0x21, al
        mov al, 0x70
        out 0xa1, al
        mov al, 0x04
        out 0x21, al
        mov al, 0x02
        out 0xa1, al
        mov al, 0x01
        out 0x21, al
        out 0xa1, al
        mov al, 0xfe            ; only IRQ 0
        out 0x21, al
        mov al, 0xff
        out 0xa1, al
        ; PIT channel 0, lobyte/hibyte, mode 2, binary; 1193 -> ~1 kHz.
        mov al, 0x34
        out 0x43, al
        mov ax, 1193
        out 0x40, al
        mov al, ah
        out 0x40, al
        sti
.wait:  hlt
        cmp word [ticks], TICKS
        jb .wait
        cli
        PRINT msg
        mov ax, [ticks]
        call print_hex16
        PRINT msg2
        EXIT 0x11

irq0_handler:
        push ax
        inc word [ticks]
        mov al, 0x20            ; non-specific EOI
        out 0x20, al
        pop ax
        iret

msg:    db "pit: 0x", 0
msg2:   db " ticks", 13, 10, 0
        BOOT_END
