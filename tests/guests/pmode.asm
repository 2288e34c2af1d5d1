; pmode: real mode -> 32-bit protected mode -> paging -> faults -> real mode.
;
; Output over COM1 (exit code 0x2a when every step worked):
;   pmode: real mode
;   pmode: protected mode, 32-bit code segment 0008
;   paging: on, CR3 00010000
;   paging: 4 KiB page 00300000 -> 00501000 ok, 4 MiB page 00400000 ok
;   #PF: cr2 00200123 err 00000002, mapping the page
;   #PF: the write was retried ok
;   #GP: err 00000080, skipping the load
;   pmode: paging off, back to real mode
;   pmode: real-mode interrupt ok
;   pmode: done
; An exception nobody expected prints "unexpected exception VV err EEEEEEEE
; at EIP" and exits with 0x7e; a value that reads back wrong exits 0x7d.
;
; Protected mode uses a flat 4 GiB code and data segment from a GDT in the
; image, an IDT of 32 interrupt gates (also in the image) and page tables
; built in RAM: the page directory at 0x10000, one page table at 0x11000
; mapping 0-4 MiB page by page (identity, except that 0x00200000 is left
; not present for the #PF and 0x00300000 is pointed at 0x00501000), and a
; 4 MiB page (CR4.PSE) mapping 4-8 MiB onto itself. The #PF handler maps the
; missing page and returns, so the faulting write runs again; the #GP comes
; from loading DS with a selector beyond the GDT limit, and its handler
; resumes after that instruction. The way back goes through a 16-bit code
; segment, clears PG and PE, and reloads real-mode segments and the IVT.
%include "lib.inc"
cpu 586                                 ; MOV CR4 (CR4.PSE for 4 MiB pages)

%define LIN(x) ((x) - $$ + 0xf0000)     ; linear address of a label

SEL_CODE32      equ 0x08
SEL_DATA32      equ 0x10
SEL_CODE16      equ 0x18
SEL_DATA16      equ 0x20
SEL_BAD         equ 0x80                ; index 16: beyond the GDT limit

PAGE_DIR        equ 0x10000
PAGE_TABLE      equ 0x11000
PTE_P           equ 0x001
PTE_RW          equ 0x002
PDE_PS          equ 0x080               ; 4 MiB page
CR0_PE          equ 0x00000001
CR0_PG          equ 0x80000000
CR4_PSE         equ 0x00000010

PF_ADDR         equ 0x00200123          ; in the page left not present
ALIAS_LIN       equ 0x00300000          ; 4 KiB page pointed elsewhere
ALIAS_PHYS      equ 0x00501000          ; inside the 4 MiB page
BIG_PAGE        equ 0x00400000
EXIT_PASS       equ 0x2a
EXIT_WRONG      equ 0x7d
EXIT_UNEXPECTED equ 0x7e
RM_TEST_VECTOR  equ 0x30
rm_flag         equ 0x600               ; word, set by the real-mode handler

main:
        PRINT msg_real
        cli
        o32 lgdt [cs:gdtr]
        mov eax, cr0
        or eax, CR0_PE
        mov cr0, eax
        jmp dword SEL_CODE32:LIN(pm32)

bits 32
pm32:
        mov ax, SEL_DATA32
        mov ds, ax
        mov es, ax
        mov fs, ax
        mov gs, ax
        mov ss, ax
        mov esp, LIB_STACK_TOP
        lidt [LIN(idtr)]
        mov esi, LIN(msg_pm)
        call puts32
        mov ax, cs
        movzx eax, ax
        mov cl, 4
        call hex32
        call nl32

        ; Page tables.
        cld
        mov edi, PAGE_DIR
        xor eax, eax
        mov ecx, 2 * 4096 / 4
        rep stosd
        mov edi, PAGE_TABLE
        mov eax, PTE_P | PTE_RW
        mov ecx, 1024
.pte:   stosd
        add eax, 4096
        loop .pte
        mov dword [PAGE_TABLE + (PF_ADDR >> 12) * 4], 0
        mov dword [PAGE_TABLE + (ALIAS_LIN >> 12) * 4], ALIAS_PHYS | PTE_P | PTE_RW
        mov dword [PAGE_DIR], PAGE_TABLE | PTE_P | PTE_RW
        mov dword [PAGE_DIR + 4], BIG_PAGE | PDE_PS | PTE_P | PTE_RW
        mov eax, cr4
        or eax, CR4_PSE
        mov cr4, eax
        mov eax, PAGE_DIR
        mov cr3, eax
        mov eax, cr0
        or eax, CR0_PG
        mov cr0, eax
        jmp .paged                      ; after setting PG, as the SDM asks
.paged: mov esi, LIN(msg_paging)
        call puts32
        mov eax, cr3
        mov cl, 8
        call hex32
        call nl32

        ; A 4 KiB page that is not identity, seen through the 4 MiB page.
        mov dword [ALIAS_LIN + 0x10], 0x600df00d
        cmp dword [ALIAS_PHYS + 0x10], 0x600df00d
        jne wrong
        mov dword [BIG_PAGE + 0x20], 0xb16b00b5
        cmp dword [BIG_PAGE + 0x20], 0xb16b00b5
        jne wrong
        mov esi, LIN(msg_alias)
        call puts32

        ; #PF: the handler maps the page, the write runs again.
        mov byte [pf_expected], 1
        mov dword [PF_ADDR], 0x12345678
        cmp byte [pf_expected], 0
        jne wrong                       ; no fault happened
        cmp dword [PF_ADDR], 0x12345678
        jne wrong
        mov esi, LIN(msg_pf_ok)
        call puts32

        ; #GP: a selector past the GDT limit.
        mov byte [gp_expected], 1
        mov ax, SEL_BAD
        mov ds, ax
gp_resume:
        mov ax, SEL_DATA32
        mov ds, ax
        cmp byte [gp_expected], 0
        jne wrong

        ; Back: paging off, 16-bit segment, PE off.
        mov eax, cr0
        and eax, ~CR0_PG
        mov cr0, eax
        jmp SEL_CODE16:(pm16 - $$)

wrong:
        mov esi, LIN(msg_wrong)
        call puts32
        mov al, EXIT_WRONG
        out DEBUG_EXIT, al
        cli
        hlt

; --- exceptions ---------------------------------------------------------------

pf_expected     equ 0x604               ; byte flags in RAM
gp_expected     equ 0x605

; Stack on entry to exc_common: vector, error code (0 when the CPU pushes
; none), EIP, CS, EFLAGS.
%assign vec 0
%rep 32
isr %+ vec:
%if vec != 8 && (vec < 10 || vec > 14) && vec != 17
        push dword 0
%endif
        push dword vec
        jmp exc_common
%assign vec vec + 1
%endrep

exc_common:
        pushad
        mov ebp, esp
        mov eax, [ebp + 32]             ; vector
        cmp eax, 14
        je .pf
        cmp eax, 13
        je .gp
.unexpected:
        mov esi, LIN(msg_unexpected)
        call puts32
        mov eax, [ebp + 32]
        mov cl, 2
        call hex32
        mov esi, LIN(msg_err)
        call puts32
        mov eax, [ebp + 36]
        mov cl, 8
        call hex32
        mov esi, LIN(msg_at)
        call puts32
        mov eax, [ebp + 40]
        mov cl, 8
        call hex32
        call nl32
        mov al, EXIT_UNEXPECTED
        out DEBUG_EXIT, al
        cli
        hlt
.pf:    cmp byte [pf_expected], 1
        jne .unexpected
        mov byte [pf_expected], 0
        mov esi, LIN(msg_pf)
        call puts32
        mov eax, cr2
        mov cl, 8
        call hex32
        mov esi, LIN(msg_err2)
        call puts32
        mov eax, [ebp + 36]
        call hex32
        mov esi, LIN(msg_pf_map)
        call puts32
        mov dword [PAGE_TABLE + (PF_ADDR >> 12) * 4], (PF_ADDR & ~0xfff) | PTE_P | PTE_RW
        mov eax, cr3                    ; a 386 has no INVLPG
        mov cr3, eax
        jmp .return
.gp:    cmp byte [gp_expected], 1
        jne .unexpected
        mov byte [gp_expected], 0
        mov esi, LIN(msg_gp)
        call puts32
        mov eax, [ebp + 36]
        mov cl, 8
        call hex32
        mov esi, LIN(msg_gp_skip)
        call puts32
        mov dword [ebp + 40], LIN(gp_resume)
.return:
        popad
        add esp, 8                      ; vector, error code
        iretd

; --- 32-bit output --------------------------------------------------------

putc32:
        push edx
        push eax
        mov dx, COM1 + UART_LSR
.wait:  in al, dx
        test al, UART_LSR_THRE
        jz .wait
        pop eax
        mov dx, COM1 + UART_THR
        out dx, al
        pop edx
        ret

; puts32: the string at linear ESI.
puts32:
        push eax
.next:  lodsb
        test al, al
        jz .done
        call putc32
        jmp .next
.done:  pop eax
        ret

; hex32: the low CL hex digits of EAX.
hex32:
        push eax
        push ebx
        push ecx
        mov ebx, eax
        push ecx
        neg cl
        add cl, 8
        shl cl, 2
        rol ebx, cl
        pop ecx
.digit: rol ebx, 4
        mov al, bl
        and al, 0x0f
        add al, '0'
        cmp al, '9'
        jbe .out
        add al, 'a' - '9' - 1
.out:   call putc32
        dec cl
        jnz .digit
        pop ecx
        pop ebx
        pop eax
        ret

nl32:
        push eax
        mov al, 13
        call putc32
        mov al, 10
        call putc32
        pop eax
        ret

; --- back in 16-bit code ------------------------------------------------------

bits 16
pm16:
        mov ax, SEL_DATA16
        mov ds, ax
        mov es, ax
        mov fs, ax
        mov gs, ax
        mov ss, ax
        mov eax, cr0
        and eax, ~CR0_PE
        mov cr0, eax
        jmp 0xf000:rm_again
rm_again:
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov fs, ax
        mov gs, ax
        mov ss, ax
        mov sp, LIB_STACK_TOP
        o32 lidt [cs:rm_idtr]
        PRINT msg_back
        mov word [rm_flag], 0
        SET_VECTOR RM_TEST_VECTOR, rm_handler
        int RM_TEST_VECTOR
        cmp word [rm_flag], 0x1234
        jne .bad
        PRINT msg_rm_int
        PRINT msg_done
        EXIT EXIT_PASS
.bad:   PRINT msg_wrong
        EXIT EXIT_WRONG

rm_handler:
        mov word [rm_flag], 0x1234
        iret

; --- tables ---------------------------------------------------------------

; The accessed bits are set already: the CPU would otherwise write them
; into the descriptors, and this table is in ROM.
align 8
gdt:
        dq 0
        dq 0x00cf9b000000ffff           ; 0x08 code, base 0, 4 GiB, 32-bit
        dq 0x00cf93000000ffff           ; 0x10 data, base 0, 4 GiB
        dq 0x00009b0f0000ffff           ; 0x18 code, base 0xF0000, 64 KiB, 16-bit
        dq 0x000093000000ffff           ; 0x20 data, base 0, 64 KiB
gdt_end:
gdtr:   dw gdt_end - gdt - 1
        dd LIN(gdt)

align 8
idt:
%assign vec 0
%rep 32
        dw (isr %+ vec - $$) & 0xffff  ; offset 15:0 (the image is at 0xF0000)
        dw SEL_CODE32
        dw 0x8e00                       ; present, DPL 0, 32-bit interrupt gate
        dw 0x000f                       ; offset 31:16
%assign vec vec + 1
%endrep
idt_end:
idtr:   dw idt_end - idt - 1
        dd LIN(idt)
rm_idtr:
        dw 0x3ff
        dd 0

msg_real:       db "pmode: real mode", 13, 10, 0
msg_pm:         db "pmode: protected mode, 32-bit code segment ", 0
msg_paging:     db "paging: on, CR3 ", 0
msg_alias:      db "paging: 4 KiB page 00300000 -> 00501000 ok, 4 MiB page 00400000 ok", 13, 10, 0
msg_pf:         db "#PF: cr2 ", 0
msg_err2:       db " err ", 0
msg_pf_map:     db ", mapping the page", 13, 10, 0
msg_pf_ok:      db "#PF: the write was retried ok", 13, 10, 0
msg_gp:         db "#GP: err ", 0
msg_gp_skip:    db ", skipping the load", 13, 10, 0
msg_back:       db "pmode: paging off, back to real mode", 13, 10, 0
msg_rm_int:     db "pmode: real-mode interrupt ok", 13, 10, 0
msg_done:       db "pmode: done", 13, 10, 0
msg_wrong:      db "pmode: a value read back wrong", 13, 10, 0
msg_unexpected: db "unexpected exception ", 0
msg_err:        db " err ", 0
msg_at:         db " at ", 0

        GUEST_END
