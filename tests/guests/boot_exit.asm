; The smallest guest: its first instructions write 0x21 to isa-debug-exit,
; so xen-dm must exit with status (0x21 << 1) | 1 = 67.
%include "boot_common.inc"
main:
        EXIT 0x21
        BOOT_END
