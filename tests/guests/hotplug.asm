; hotplug: an ACPI operating system's side of PCI hot-plug, in miniature.
;
; It does what hvmloader and then the OS's ACPI driver do with the qemu-xen
; register layout (docs: hotplug.md, xen-dm-interfaces.md §5):
;   firmware: PIIX4 PM I/O at 0xB000 (PMBA, PMIOSE), ACPI_ENABLE (0xF1) to
;             SMI_CMD (0xB2) and a check that PM1a_CNT.SCI_EN came on;
;   OS:       SCI handler on ISA IRQ 9 (level-triggered: ELCR bit 9),
;             GPE0 enable bit 1, then "ready" and HLT.
; On each SCI with GPE0 status bit 1 set it clears that bit first (an edge
; GPE, _E01: whatever happens after the clear raises a new SCI, so nothing
; is lost), then does what the DSDT's _E01 and the OS's notify handlers do:
;   up (0xAE00) = every occupied hot-pluggable slot: a slot that is not yet
;      known is announced    "notify slot N: insert (00:NN.0 vvvv:dddd)"
;   down (0xAE04) = every slot with a removal request: each one is announced
;      "notify slot N: removal (00:NN.0 vvvv:dddd)", ejected by writing its
;      bit to 0xAE08, and checked: "eject slot N: gone" once function 0's
;      vendor ID reads 0xFFFF ("eject slot N: still present" otherwise).
; Up is not a latch (every GPE shows all occupied slots again), so the guest
; keeps the set of slots it knows about; slots occupied when it started are
; known from the start and reported once:
;   "hotplug: occupied 0x........ removable 0x........"
;
; Commands over COM1 (received-data interrupt, IRQ 4):
;   's'  prints "status: up 0x........ down 0x........ known 0x........"
;   'h'  holds events: masks the SCI at the PIC, prints "hold"; GPEs that
;        arrive meanwhile stay pending in GPE0 status (and the SCI level)
;   'g'  unmasks the SCI again, prints "go"; whatever is pending is handled
;        at once, all of it in one scan
;   'q'  prints "bye: N notifications" and exits with status (N << 1) | 1,
;        N counting insert and removal notifications (at most 127).
%include "lib.inc"

PCIHP_UP        equ 0xae00      ; PCIU: present & hot-pluggable slots
PCIHP_DOWN      equ 0xae04      ; PCID: slots with a removal request
PCIHP_EJECT     equ 0xae08      ; B0EJ: write a slot's bit to eject it
PCIHP_REMOVABLE equ 0xae0c      ; B0RM: hot-pluggable slots
GPE0_STS        equ 0xafe0      ; status, write 1 to clear
GPE0_EN         equ 0xafe2
GPE_PCI_HOTPLUG equ 0x02        ; GPE0 bit 1
SMI_CMD         equ 0xb2
ACPI_ENABLE     equ 0xf1
PM_IO_BASE      equ 0xb000      ; where hvmloader puts the PM block
PM1A_CNT        equ PM_IO_BASE + 4
PM1_CNT_SCI_EN  equ 0x0001
PIIX4_PM_DEVFN  equ (1 << 3) | 3
PIIX4_PMBA      equ 0x40
PIIX4_PMREGMISC equ 0x80        ; bit 0 PMIOSE: PM I/O space enable
SCI_IRQ         equ 9
SCI_VECTOR      equ PIC2_VECTOR + SCI_IRQ - 8
UART_IRQ        equ 4
UART_VECTOR     equ PIC1_VECTOR + UART_IRQ
EXIT_ACPI_FAIL  equ 0x7f

; Guest variables, in RAM (DS = 0).
known           equ 0x500       ; dword: slots the OS knows as occupied
notifications   equ 0x504       ; word

main:
        PRINT banner
        mov dword [known], 0
        mov word [notifications], 0
        ; Every PIC vector goes somewhere; two of them matter.
        mov bx, PIC1_VECTOR
.vec:   mov si, bx
        shl si, 2
        mov word [si], irq_ignored
        mov [si + 2], cs
        inc bx
        cmp bx, PIC2_VECTOR + 8
        jb .vec
        SET_VECTOR SCI_VECTOR, sci_handler
        SET_VECTOR UART_VECTOR, uart_handler
        call pic_init
        mov dx, ELCR1
        xor al, al
        out dx, al
        mov dx, ELCR2
        mov al, 1 << (SCI_IRQ - 8)     ; the SCI is level-triggered
        out dx, al

        ; Firmware: the PM I/O block at 0xB000, then ACPI mode.
        mov bx, PIIX4_PM_DEVFN
        mov cl, PIIX4_PMBA
        mov edx, PM_IO_BASE | 1
        call pci_write32
        mov cl, PIIX4_PMREGMISC
        call pci_read32
        or al, 1
        mov edx, eax
        call pci_write32
        mov al, ACPI_ENABLE
        out SMI_CMD, al
        mov dx, PM1A_CNT
        in ax, dx
        test ax, PM1_CNT_SCI_EN
        jnz .acpi_on
        PRINT acpi_failed
        EXIT EXIT_ACPI_FAIL
.acpi_on:
        PRINT acpi_on

        ; OS: forget a stale event, learn what is there, enable the GPE.
        mov dx, GPE0_STS
        mov al, GPE_PCI_HOTPLUG
        out dx, al
        mov dx, PCIHP_UP
        in eax, dx
        mov [known], eax
        PRINT occupied_msg
        call print_hex32
        PRINT removable_msg
        mov dx, PCIHP_REMOVABLE
        in eax, dx
        call print_hex32
        call print_nl
        mov dx, GPE0_EN
        mov al, GPE_PCI_HOTPLUG
        out dx, al

        ; Commands arrive as received-data interrupts.
        mov dx, COM1 + UART_IER
        mov al, UART_IER_ERBFI
        out dx, al
        mov dx, COM1 + UART_MCR
        mov al, 0x03 | UART_MCR_OUT2
        out dx, al
        mov al, ~((1 << 2) | (1 << UART_IRQ)) & 0xff  ; cascade, COM1
        out PIC1_DATA, al
        mov al, ~(1 << (SCI_IRQ - 8)) & 0xff
        out PIC2_DATA, al
        PRINT ready
.idle:  sti
        hlt
        jmp .idle

; --- interrupt handlers -----------------------------------------------------

irq_ignored:
        push ax
        mov al, PIC_EOI
        out PIC2_CMD, al
        out PIC1_CMD, al
        pop ax
        iret

sci_handler:
        pushad
        push ds
        xor ax, ax
        mov ds, ax
        mov dx, GPE0_STS
        in al, dx
        and al, GPE_PCI_HOTPLUG
        jz .eoi                         ; not ours
        out dx, al                      ; clear before looking (edge GPE)
        call hotplug_scan
.eoi:   mov al, PIC_EOI
        out PIC2_CMD, al
        out PIC1_CMD, al
        pop ds
        popad
        iret

uart_handler:
        pushad
        push ds
        xor ax, ax
        mov ds, ax
.more:  mov dx, COM1 + UART_LSR
        in al, dx
        test al, UART_LSR_DR
        jz .done
        mov dx, COM1 + UART_RBR
        in al, dx
        cmp al, 'q'
        je .quit
        cmp al, 's'
        je .status
        cmp al, 'h'
        je .hold
        cmp al, 'g'
        je .go
        jmp .more
.status:
        call print_status
        jmp .more
.hold:  in al, PIC2_DATA
        or al, 1 << (SCI_IRQ - 8)
        out PIC2_DATA, al
        PRINT hold_msg
        jmp .more
.go:    PRINT go_msg
        in al, PIC2_DATA
        and al, ~(1 << (SCI_IRQ - 8)) & 0xff
        out PIC2_DATA, al
        jmp .more
.done:  mov al, PIC_EOI
        out PIC1_CMD, al
        pop ds
        popad
        iret
.quit:  PRINT bye_msg
        mov ax, [notifications]
        call print_dec
        PRINT bye_msg2
        mov ax, [notifications]
        cmp ax, 127
        jbe .code
        mov al, 127
.code:  EXIT al

; --- the _E01 method and the OS's notify handling ---------------------------

; hotplug_scan: reads up and down once and acts on them.
hotplug_scan:
        mov dx, PCIHP_UP
        in eax, dx
        mov esi, eax                    ; up
        mov dx, PCIHP_DOWN
        in eax, dx
        mov edi, eax                    ; down
        ; Device check for every occupied slot: the new ones are insertions.
        mov ebx, [known]
        not ebx
        and ebx, esi
.insert:
        bsf ecx, ebx
        jz .removals
        btr ebx, ecx
        bts dword [known], ecx
        inc word [notifications]
        mov ax, cx
        mov si, insert_msg
        call print_notify
        jmp .insert
.removals:
        bsf ecx, edi
        jz .forget
        btr edi, ecx
        inc word [notifications]
        mov ax, cx
        mov si, removal_msg
        call print_notify
        xor eax, eax
        bts eax, ecx
        mov dx, PCIHP_EJECT
        out dx, eax
        btr dword [known], ecx
        PRINT eject_msg
        mov ax, cx
        call print_dec
        mov bx, cx
        shl bx, 3                       ; devfn of function 0
        push cx
        xor cl, cl
        call pci_read32
        pop cx
        mov si, gone_msg
        cmp ax, 0xffff
        je .said
        mov si, present_msg
.said:  call uart_puts
        jmp .removals
.forget:
        ; A slot that emptied without a request (another ejector, a reset)
        ; is no longer known either.
        mov dx, PCIHP_UP
        in eax, dx
        and [known], eax
        ret

; print_notify: "notify slot N: <SI> (00:NN.0 vvvv:dddd)" for slot AX.
print_notify:
        push eax
        push bx
        push cx
        push ax
        push si
        PRINT notify_msg
        call print_dec
        pop si
        call uart_puts
        pop ax
        mov bx, ax
        shl bx, 3
        PRINT bdf_msg
        call print_hex8
        PRINT fn0_msg
        xor cl, cl
        call pci_read32
        call print_hex16                ; vendor
        mov al, ':'
        call uart_putc
        shr eax, 16
        call print_hex16                ; device
        mov al, ')'
        call uart_putc
        call print_nl
        pop cx
        pop bx
        pop eax
        ret

print_status:
        PRINT status_up
        mov dx, PCIHP_UP
        in eax, dx
        call print_hex32
        PRINT status_down
        mov dx, PCIHP_DOWN
        in eax, dx
        call print_hex32
        PRINT status_known
        mov eax, [known]
        call print_hex32
        call print_nl
        ret

banner:         db "hotplug: ACPI OS stand-in, qemu-xen layout", 13, 10, 0
acpi_failed:    db "acpi: SCI_EN still clear after ACPI_ENABLE", 13, 10, 0
acpi_on:        db "acpi: enabled (SCI_EN=1), SCI on IRQ 9", 13, 10, 0
occupied_msg:   db "hotplug: occupied 0x", 0
removable_msg:  db " removable 0x", 0
ready:          db "ready", 13, 10, 0
notify_msg:     db "notify slot ", 0
insert_msg:     db ": insert", 0
removal_msg:    db ": removal", 0
bdf_msg:        db " (00:", 0
fn0_msg:        db ".0 ", 0
eject_msg:      db "eject slot ", 0
gone_msg:       db ": gone", 13, 10, 0
present_msg:    db ": still present", 13, 10, 0
status_up:      db "status: up 0x", 0
status_down:    db " down 0x", 0
status_known:   db " known 0x", 0
hold_msg:       db "hold", 13, 10, 0
go_msg:         db "go", 13, 10, 0
bye_msg:        db "bye: ", 0
bye_msg2:       db " notifications", 13, 10, 0

        GUEST_END
