"""A minimal x86-64 ELF shared object that defines no symbol.

LiteRT's Qualcomm compiler plugin lists `libQnnLpai.so` (the low-power AI
backend) as NEEDED but calls nothing in it, and the QAIRT libraries in the
`onnxruntime-qnn` wheel do not include it. The dynamic loader is satisfied
by any valid shared object of that name, so we write one here instead of
needing a C compiler on the user's machine: one PT_LOAD segment holding a
dynamic section, an empty symbol table, a one-bucket hash table and the
soname string. About 400 bytes, the same on every run.
"""

import struct

__all__ = ["empty_shared_object"]

_BASE_ALIGN = 0x1000
_EHDR_SIZE, _PHDR_SIZE, _SYM_SIZE = 64, 56, 24
_PT_LOAD, _PT_DYNAMIC = 1, 2
_PF_R, _PF_W = 4, 2
_DT_NULL, _DT_HASH, _DT_STRTAB, _DT_SYMTAB = 0, 4, 5, 6
_DT_STRSZ, _DT_SYMENT, _DT_SONAME = 10, 11, 14


def _header(phoff, phnum):
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, LE, SysV
    return ident + struct.pack(
        "<HHIQQQIHHHHHH",
        3,  # ET_DYN
        62,  # EM_X86_64
        1,  # EV_CURRENT
        0,  # no entry point
        phoff,
        0,  # no section headers: the loader reads only segments
        0,
        _EHDR_SIZE,
        _PHDR_SIZE,
        phnum,
        64,  # e_shentsize (unused with no sections)
        0,
        0,
    )


def _segment(kind, flags, offset, size, align):
    # p_vaddr == p_offset: the file maps at the load base unchanged
    return struct.pack(
        "<IIQQQQQQ", kind, flags, offset, offset, offset, size, size, align
    )


def empty_shared_object(soname: str) -> bytes:
    """The bytes of an x86-64 ELF shared object named `soname`."""
    strtab = b"\0" + soname.encode("ascii") + b"\0"
    symtab = bytes(_SYM_SIZE)  # the mandatory null symbol only
    hashtab = struct.pack("<IIII", 1, 1, 0, 0)  # nbucket, nchain, 0, 0
    tables_at = _EHDR_SIZE + 2 * _PHDR_SIZE
    strtab_at = tables_at
    symtab_at = _align(strtab_at + len(strtab), 8)
    hash_at = symtab_at + len(symtab)
    dynamic_at = _align(hash_at + len(hashtab), 8)
    entries = [
        (_DT_HASH, hash_at),
        (_DT_STRTAB, strtab_at),
        (_DT_SYMTAB, symtab_at),
        (_DT_STRSZ, len(strtab)),
        (_DT_SYMENT, _SYM_SIZE),
        (_DT_SONAME, 1),
        (_DT_NULL, 0),
    ]
    dynamic = b"".join(struct.pack("<qQ", tag, value) for tag, value in entries)
    end = dynamic_at + len(dynamic)
    image = bytearray(end)
    image[:_EHDR_SIZE] = _header(_EHDR_SIZE, 2)
    image[_EHDR_SIZE:tables_at] = _segment(
        _PT_LOAD, _PF_R | _PF_W, 0, end, _BASE_ALIGN
    ) + _segment(_PT_DYNAMIC, _PF_R | _PF_W, dynamic_at, len(dynamic), 8)
    image[strtab_at : strtab_at + len(strtab)] = strtab
    image[symtab_at:hash_at] = symtab
    image[hash_at : hash_at + len(hashtab)] = hashtab
    image[dynamic_at:end] = dynamic
    return bytes(image)


def _align(value, alignment):
    return (value + alignment - 1) // alignment * alignment
