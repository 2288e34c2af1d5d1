"""A puppet device model for testing the Xen double call by call.

Run as `python3 puppet.py` with the double's environment (XEN_DOUBLE_DIR,
LD_PRELOAD naming libxendouble.so). It loads the doubled libraries with
ctypes and performs the calls it reads from stdin, one JSON object a line:

    {"call": "xendevicemodel_create_ioreq_server", "args": [DM, 1, 2, {"out": "u16"}]}
 -> {"ret": 0, "errno": 0, "out": [0]}

Arguments are integers (pointers too), null, or:
    {"out": TYPE, "init": V}  a pointer to a TYPE variable (u8 u16 u32 u64 int ptr), returned in "out"
    {"buf": HEX}              a pointer to these bytes
    {"outbuf": N}             a pointer to N zero bytes, returned (as hex) in "out"
Other requests: {"peek": ADDR, "len": N} -> {"data": HEX}; {"poke": ADDR,
"data": HEX}; {"poll": FD, "timeout": S} -> {"readable": BOOL};
{"exit": 0}.

Every doubled function's prototype is declared below, so the puppet
exercises the exact C interface the device model links against.
"""

import ctypes
import json
import os
import select
import sys

C = ctypes
vp, u8, u16, u32, u64, i32 = C.c_void_p, C.c_uint8, C.c_uint16, C.c_uint32, C.c_uint64, C.c_int
ulong, size_t, uint = C.c_ulong, C.c_size_t, C.c_uint

PROTOTYPES = {
    # libxendevicemodel
    "xendevicemodel_open": (vp, [vp, uint]),
    "xendevicemodel_close": (i32, [vp]),
    "xendevicemodel_create_ioreq_server": (i32, [vp, u16, i32, vp]),
    "xendevicemodel_get_ioreq_server_info": (i32, [vp, u16, u16, vp, vp, vp]),
    "xendevicemodel_map_io_range_to_ioreq_server": (i32, [vp, u16, u16, i32, u64, u64]),
    "xendevicemodel_unmap_io_range_from_ioreq_server": (i32, [vp, u16, u16, i32, u64, u64]),
    "xendevicemodel_map_pcidev_to_ioreq_server": (i32, [vp, u16, u16, u16, u8, u8, u8]),
    "xendevicemodel_unmap_pcidev_from_ioreq_server": (i32, [vp, u16, u16, u16, u8, u8, u8]),
    "xendevicemodel_map_mem_type_to_ioreq_server": (i32, [vp, u16, u16, u16, u32]),
    "xendevicemodel_set_ioreq_server_state": (i32, [vp, u16, u16, i32]),
    "xendevicemodel_destroy_ioreq_server": (i32, [vp, u16, u16]),
    "xendevicemodel_set_isa_irq_level": (i32, [vp, u16, u8, uint]),
    "xendevicemodel_set_pci_intx_level": (i32, [vp, u16, u16, u8, u8, u8, uint]),
    "xendevicemodel_set_irq_level": (i32, [vp, u16, uint, uint]),
    "xendevicemodel_set_pci_link_route": (i32, [vp, u16, u8, u8]),
    "xendevicemodel_inject_msi": (i32, [vp, u16, u64, u32]),
    "xendevicemodel_track_dirty_vram": (i32, [vp, u16, u64, u32, vp]),
    "xendevicemodel_modified_memory": (i32, [vp, u16, u64, u32]),
    "xendevicemodel_modified_memory_bulk": (i32, [vp, u16, vp, u32]),
    "xendevicemodel_set_mem_type": (i32, [vp, u16, i32, u64, u32]),
    "xendevicemodel_inject_event": (i32, [vp, u16, i32, u8, u8, u32, u8, u64]),
    "xendevicemodel_shutdown": (i32, [vp, u16, uint]),
    "xendevicemodel_relocate_memory": (i32, [vp, u16, u32, u64, u64]),
    "xendevicemodel_pin_memory_cacheattr": (i32, [vp, u16, u64, u64, u32]),
    "xendevicemodel_nr_vcpus": (i32, [vp, u16, vp]),
    "xendevicemodel_restrict": (i32, [vp, u16]),
    # libxenforeignmemory
    "xenforeignmemory_open": (vp, [vp, uint]),
    "xenforeignmemory_close": (i32, [vp]),
    "xenforeignmemory_map": (vp, [vp, u32, i32, size_t, vp, vp]),
    "xenforeignmemory_map2": (vp, [vp, u32, vp, i32, i32, size_t, vp, vp]),
    "xenforeignmemory_unmap": (i32, [vp, vp, size_t]),
    "xenforeignmemory_restrict": (i32, [vp, u16]),
    "xenforeignmemory_map_resource": (vp, [vp, u16, uint, uint, ulong, ulong, vp, i32, i32]),
    "xenforeignmemory_unmap_resource": (i32, [vp, vp]),
    "xenforeignmemory_resource_size": (i32, [vp, u16, uint, uint, vp]),
    # libxenevtchn
    "xenevtchn_open": (vp, [vp, uint]),
    "xenevtchn_close": (i32, [vp]),
    "xenevtchn_fd": (i32, [vp]),
    "xenevtchn_bind_interdomain": (i32, [vp, u32, u32]),
    "xenevtchn_notify": (i32, [vp, u32]),
    "xenevtchn_pending": (i32, [vp]),
    "xenevtchn_unmask": (i32, [vp, u32]),
    "xenevtchn_unbind": (i32, [vp, u32]),
    "xenevtchn_restrict": (i32, [vp, u16]),
    # libxenctrl, libxentoolcore
    "xc_interface_open": (vp, [vp, vp, uint]),
    "xc_interface_close": (i32, [vp]),
    "xc_hvm_param_set": (i32, [vp, u32, u32, u64]),
    "xc_hvm_param_get": (i32, [vp, u32, u32, vp]),
    "xc_set_hvm_param": (i32, [vp, u32, i32, ulong]),
    "xc_get_hvm_param": (i32, [vp, u32, i32, vp]),
    "xc_domain_getinfolist": (i32, [vp, u32, uint, vp]),
    "xc_domain_memory_mapping": (i32, [vp, u32, ulong, ulong, ulong, u32]),
    "xc_domain_ioport_mapping": (i32, [vp, u32, u32, u32, u32, u32]),
    "xc_physdev_map_pirq": (i32, [vp, u32, i32, vp]),
    "xc_physdev_map_pirq_msi": (i32, [vp, u32, i32, vp, i32, i32, i32, u64]),
    "xc_physdev_unmap_pirq": (i32, [vp, u32, i32]),
    "xc_domain_bind_pt_pci_irq": (i32, [vp, u32, u8, u8, u8, u8]),
    "xc_domain_unbind_pt_irq": (i32, [vp, u32, u8, u8, u8, u8, u8, u8]),
    "xc_domain_update_msi_irq": (i32, [vp, u32, u32, u32, u32, u64]),
    "xc_domain_unbind_msi_irq": (i32, [vp, u32, u32, u32, u32]),
    "xentoolcore_restrict_all": (i32, [u16]),
}

OUT_TYPES = {"u8": u8, "u16": u16, "u32": u32, "u64": u64, "int": i32, "ptr": vp, "ulong": ulong}


def main():
    lib = C.CDLL(os.environ.get("XEN_DOUBLE_LIB", "libxendouble.so"), use_errno=True)
    for name, (res, args) in PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        if "exit" in req:
            break
        if "peek" in req:
            reply = {"data": C.string_at(req["peek"], req["len"]).hex()}
        elif "poke" in req:
            data = bytes.fromhex(req["data"])
            C.memmove(req["poke"], data, len(data))
            reply = {}
        elif "poll" in req:
            r, _, _ = select.select([req["poll"]], [], [], req["timeout"])
            reply = {"readable": bool(r)}
        else:
            reply = call(lib, req["call"], req["args"])
        out.write(json.dumps(reply) + "\n")
        out.flush()


def call(lib, name, args):
    fn = getattr(lib, name)
    cargs, outs = [], []
    for a in args:
        if isinstance(a, dict) and "out" in a:
            v = OUT_TYPES[a["out"]](a.get("init", 0))
            outs.append(("value", v))
            cargs.append(C.addressof(v))
        elif isinstance(a, dict) and "buf" in a:
            b = C.create_string_buffer(bytes.fromhex(a["buf"]), max(len(a["buf"]) // 2, 1))
            outs.append(("keep", b))
            cargs.append(C.addressof(b))
        elif isinstance(a, dict) and "outbuf" in a:
            b = C.create_string_buffer(a["outbuf"])
            outs.append(("buf", b))
            cargs.append(C.addressof(b))
        else:
            cargs.append(a)
    C.set_errno(0)
    ret = fn(*cargs)
    err = C.get_errno()
    values = []
    for kind, v in outs:
        if kind == "value":
            values.append(v.value)
        elif kind == "buf":
            values.append(v.raw.hex())
    return {"ret": ret, "errno": err, "out": values}


if __name__ == "__main__":
    main()
