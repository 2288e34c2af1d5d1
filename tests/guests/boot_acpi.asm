; ACPI events through the SCI (ISA IRQ 9, level, on the slave 8259): sets
; up the PIIX4 PM block at 0xB000 (PMBA, PMIOSE), enables the power button
; in PM1_EN and hot-plug GPE0 bit 1 in GPE0_EN (0xAFE2), unmasks IRQ 9
; (ELCR level) and waits. On each SCI it reports what it found:
;   "gpe XXXX"      GPE0 status bits (cleared by writing them back)
;   "power button"  PWRBTN_STS: then it powers off through PM1a_CNT
;                   (SLP_TYP S5 | SLP_EN), which ends xen-dm with status 0.
; The test drives it with QMP device_add / system_powerdown.
%include "boot_common.inc"
PMBASE   equ 0xb000
PM1_STS  equ PMBASE + 0
PM1_EN   equ PMBASE + 2
PM1_CNT  equ PMBASE + 4
GPE0_STS equ 0xafe0
GPE0_EN  equ 0xafe2
PM_CFG   equ 0x80000b00         ; 00:01.3 configuration space

main:
        mov word [0x71 * 4], sci_handler ; IRQ 9 = slave IR1 = vector 0x71
        mov word [0x71 * 4 + 2], cs
        ; PMBA = 0xB001 (I/O), PMREGMISC.PMIOSE = 1.
        mov dx, 0xcf8
        mov eax, PM_CFG + 0x40
        out dx, eax
        mov dx, 0xcfc
        mov eax, PMBASE | 1
        out dx, eax
        mov dx, 0xcf8
        mov eax, PM_CFG + 0x80
        out dx, eax
        mov dx, 0xcfc
        mov al, 1
        out dx, al
        ; Events: the power button, hot-plug GPE bit 1.
        mov dx, PM1_EN
        mov ax, 0x0100
        out dx, ax
        mov dx, GPE0_EN
        mov ax, 0x0002
        out dx, ax
        ; PICs: master base 8, slave base 0x70; only the cascade (IR2)
        ; and IRQ 9 unmasked; IRQ 9 level-triggered in ELCR2.
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
        mov al, 0xfb
        out 0x21, al
        mov al, 0xfd
        out 0xa1, al
        mov dx, 0x4d1
        mov al, 0x02
        out dx, al
        PRINT ready
        sti
.idle:  hlt
        jmp .idle

sci_handler:
        pusha
        mov dx, PM1_STS
        in ax, dx
        test ax, 0x0100
        jnz .button
        mov dx, GPE0_STS
        in ax, dx
        test ax, ax
        jz .eoi
        out dx, ax              ; write 1 to clear
        PRINT gpe
        call print_hex16
        mov al, 10
        call uart_putc
.eoi:   mov al, 0x20
        out 0xa0, al
        out 0x20, al
        popa
        iret
.button:
        out dx, ax
        PRINT button
        mov dx, PM1_CNT
        mov ax, 0x2000          ; SLP_TYP 0 (S5) | SLP_EN
        out dx, ax
.off:   hlt
        jmp .off

ready:  db "acpi: ready", 10, 0
gpe:    db "gpe ", 0
button: db "power button", 10, 0
        BOOT_END
