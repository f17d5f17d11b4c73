"""Keeps one GPU architecture's machine code in a CUDA shared library, for transport.

ONNX Runtime's CUDA provider library carries its kernels as compiled cubins for several
architectures (sm_75 ... sm_120) in the `.nv_fatbin` section: 218 of its 284 MB, already
zstd-compressed, so general compressors gain little on them. A GPU only ever loads the cubins of
its own architecture. This tool overwrites the payloads of the other architectures' cubins with
zeros, in place: the file keeps its size, layout and every header (nothing is relinked), and the
zeros compress to nothing. Containers with no cubin for the kept architecture are left as they
are, so a kernel that had no code for that GPU before has none after, and every kernel that had
code still has it.

Layout (NVIDIA's fat binary container, as documented by reverse engineering of cuobjdump): a
run of containers, each a 16-byte header (magic 0xBA55ED50, version 1, header size 16, u64
size of what follows) and entries, each a header (u16 kind: 1 PTX, 2 ELF; u16; u32 header
size; u32 padded payload size; u32; u32 payload size; u32; u32 minor; u32 arch) followed by
its payload.

    python3 tools/gpu-check/fatbin.py LIB.so --keep-sm 90 --out PRUNED.so
    python3 tools/gpu-check/fatbin.py LIB.so --list
"""

import argparse
import collections
import struct
import sys

MAGIC = 0xBA55ED50
ELF_KINDS = (2, 0x10)


class FatbinError(Exception):
    pass


def fatbin_section(data):
    """(offset, size) of the `.nv_fatbin` section of an ELF64 little-endian file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise FatbinError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i):
        name, _type, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name:end] == b".nv_fatbin":
            return off, size
    raise FatbinError("no .nv_fatbin section (not a CUDA library?)")


def entries(data, off, size):
    """Yields (container index, entry offset, header size, padded payload size, kind, arch)."""
    pos, end, index = off, off + size, 0
    while pos + 16 <= end:
        magic, version, header, body = struct.unpack_from("<IHHQ", data, pos)
        if magic != MAGIC:
            # Containers are 8-byte aligned; anything else between them is padding.
            if any(data[pos:pos + 8]):
                raise FatbinError(f"unexpected bytes at offset {pos:#x} (not a fat binary container)")
            pos += 8
            continue
        if version != 1 or header != 16 or pos + 16 + body > end:
            raise FatbinError(f"container at {pos:#x}: version {version}, header {header}, size {body}")
        e, cend = pos + 16, pos + 16 + body
        while e + 64 <= cend:
            kind, _, esize, padded, _, _, _, _, arch = struct.unpack_from("<HHIIIIIII", data, e)
            if esize == 0:
                break
            if e + esize + padded > cend:
                raise FatbinError(f"entry at {e:#x} runs past its container")
            yield index, e, esize, padded, kind, arch
            e += esize + padded
        pos, index = cend, index + 1


def summary(data):
    off, size = fatbin_section(data)
    by = collections.Counter()
    for _, _, esize, padded, kind, arch in entries(data, off, size):
        by[("elf" if kind in ELF_KINDS else f"kind{kind}", arch)] += esize + padded
    return size, by


def prune(data, keep_sm):
    """Zeroes, in a copy of `data`, the cubins of other architectures in every container that
    has one for `keep_sm`. Returns (new bytes, bytes zeroed)."""
    off, size = fatbin_section(data)
    out = bytearray(data)
    by_container = collections.defaultdict(list)
    for item in entries(data, off, size):
        by_container[item[0]].append(item)
    zeroed = 0
    for items in by_container.values():
        if not any(kind in ELF_KINDS and arch == keep_sm for _, _, _, _, kind, arch in items):
            continue
        for _, e, esize, padded, kind, arch in items:
            if kind in ELF_KINDS and arch != keep_sm:
                out[e + esize:e + esize + padded] = bytes(padded)
                zeroed += padded
    return bytes(out), zeroed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("lib")
    p.add_argument("--keep-sm", type=int, help="architecture to keep, e.g. 90 for H100/H200")
    p.add_argument("--out", help="where to write the pruned library")
    p.add_argument("--list", action="store_true", help="print the bytes per architecture")
    a = p.parse_args(argv)
    with open(a.lib, "rb") as f:
        data = f.read()
    try:
        if a.list or not a.keep_sm:
            size, by = summary(data)
            print(f".nv_fatbin: {size / 1e6:.1f} MB")
            for (kind, arch), n in sorted(by.items()):
                print(f"  {kind} sm_{arch}: {n / 1e6:.1f} MB")
            return 0
        if not a.out:
            p.error("--keep-sm needs --out")
        pruned, zeroed = prune(data, a.keep_sm)
    except FatbinError as e:
        print(f"fatbin: {a.lib}: {e}", file=sys.stderr)
        return 1
    if zeroed == 0:
        print(f"fatbin: {a.lib} has no sm_{a.keep_sm} cubins next to others; nothing to prune", file=sys.stderr)
        return 1
    with open(a.out, "wb") as f:
        f.write(pruned)
    print(f"fatbin: zeroed {zeroed / 1e6:.1f} MB of cubins for other GPUs than sm_{a.keep_sm} -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
