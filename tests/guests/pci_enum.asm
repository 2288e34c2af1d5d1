; pci_enum: lists PCI bus 0 over COM1 the way `lspci -n` does, then exits.
;
; Output, one line per function found, in slot then function order:
;     00:01.3 0680: 8086:7113 (rev 03)
; (bus:slot.function, class and subclass, vendor:device, revision), then
;     pci: 5 functions on bus 0
; and the exit code is the number of functions (status (n << 1) | 1).
;
; Configuration mechanism #1 (0xCF8/0xCFC). Every one of the 32 slots is
; probed at function 0; a vendor ID of 0xFFFF means the slot is empty.
; Functions 1-7 are probed only when function 0's header type has bit 7
; (multi-function) set, as the PCI spec requires: single-function devices
; may not decode the function number and would appear eight times.
%include "lib.inc"

PCI_VENDOR_ID   equ 0x00
PCI_CLASS_REV   equ 0x08    ; revision (7:0), prog-if, subclass, class
PCI_HEADER_DW   equ 0x0c    ; header type is bits 23:16
PCI_HEADER_MULTIFUNCTION equ 0x80

main:
        PRINT banner
        xor bp, bp                      ; functions found
        xor bx, bx                      ; devfn
.slot:
        xor cl, cl
        call pci_read32                 ; vendor:device of function 0
        cmp ax, 0xffff
        je .next_slot
        call print_function
        inc bp
        mov cl, PCI_HEADER_DW
        call pci_read32
        shr eax, 16
        test al, PCI_HEADER_MULTIFUNCTION
        jz .next_slot
.function:
        inc bx
        test bl, 7
        jz .slot_done                   ; wrapped to the next slot
        xor cl, cl
        call pci_read32
        cmp ax, 0xffff
        je .function
        call print_function
        inc bp
        jmp .function
.next_slot:
        and bx, ~7
        add bx, 8
.slot_done:
        cmp bx, 32 * 8
        jb .slot
        PRINT summary1
        mov ax, bp
        call print_dec
        PRINT summary2
        mov ax, bp
        EXIT al

; print_function: the lspci -n line of devfn BX, whose vendor:device
; dword is in EAX.
print_function:
        push eax
        push ebx
        push cx
        mov ecx, eax                    ; keep vendor:device
        push ecx
        mov al, '0'
        call uart_putc
        call uart_putc                  ; bus 00
        mov al, ':'
        call uart_putc
        mov ax, bx
        shr ax, 3
        call print_hex8                 ; slot
        mov al, '.'
        call uart_putc
        mov al, bl
        and al, 7
        add al, '0'
        call uart_putc                  ; function
        mov al, ' '
        call uart_putc
        mov cl, PCI_CLASS_REV
        call pci_read32
        mov ebx, eax                    ; BX no longer needed as devfn
        shr eax, 16
        call print_hex16                ; class, subclass
        PRINT sep_class
        pop ecx
        mov ax, cx
        call print_hex16                ; vendor
        mov al, ':'
        call uart_putc
        mov eax, ecx
        shr eax, 16
        call print_hex16                ; device
        PRINT sep_rev
        mov al, bl
        call print_hex8                 ; revision
        mov al, ')'
        call uart_putc
        call print_nl
        pop cx
        pop ebx
        pop eax
        ret

banner:     db "pci_enum: bus 0", 13, 10, 0
sep_class:  db ": ", 0
sep_rev:    db " (rev ", 0
summary1:   db "pci: ", 0
summary2:   db " functions on bus 0", 13, 10, 0

        GUEST_END
