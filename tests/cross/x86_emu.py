#!/usr/bin/env python3
"""x86_emu.py: runs a static x86-64 Linux program on Bochs' CPU model
(bochscpu-python), so that code for instruction sets this machine lacks
(AVX-512, VNNI) runs and is checked here.

    x86_emu.py [--cpu tigerlake|cannonlake] --bochscpu DIR PROGRAM [ARG...]
    exit status: the program's

DIR holds the bochscpu package (pip install --target DIR bochscpu-python==0.4.0).
--cpu: Tiger Lake (the default: AVX-512 with VNNI) or the wheel's own
Cannon Lake (AVX-512 without VNNI, as Skylake-SP).

Just enough of a Linux kernel for single-threaded static glibc programs:
the ELF is loaded at its addresses, memory is identity-mapped (2 MiB pages)
and backed on first touch, and `syscall` is trapped (EFER.SCE off makes it
#UD) and served here: brk, mmap, write, clock_gettime, getrandom, exit and
the start-up calls; anything else gets -ENOSYS. Emulation runs at a few
tens of millions of instructions a second: keep the programs small.
"""
import os
import struct
import sys
import time

# bochscpu-python 0.4.0 builds Bochs with its CPU model fixed at Cannon
# Lake: AVX-512 without VNNI, so vpdpbusd would raise #UD. Its CPUID
# factory's one call to create_corei3_cnl_cpuid is pointed at
# create_tigerlake_cpuid (AVX-512 F/BW/VL/DQ + VNNI) in a private copy of
# the module. The wheels differ per Python version, so the call is found
# by disassembling (objdump, binutils) rather than at a fixed offset.
CNL_SYM = "_Z23create_corei3_cnl_cpuidP8BX_CPU_C"
TGL_SYM = "_Z22create_tigerlake_cpuidP8BX_CPU_C"


def file_offset(data, vaddr):
    """The file offset of vaddr in an ELF64 file's PT_LOAD segments."""
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for i in range(phnum):
        p_type, _, off, va, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1 and va <= vaddr < va + filesz:
            return off + vaddr - va
    raise SystemExit(f"x86_emu: address {vaddr:#x} is in no loaded segment of the bochscpu module")


def retarget_cpu_model(so_path, data):
    import re
    import subprocess
    try:
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", so_path], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"x86_emu: objdump (binutils) could not disassemble {so_path}: {e}")
    calls = re.findall(rf"^\s*([0-9a-f]+):\s+call\s+([0-9a-f]+) <{CNL_SYM}@plt>", dis, re.M)
    tgl = re.findall(rf"^([0-9a-f]+) <{TGL_SYM}@plt>:", dis, re.M)
    if len(calls) != 1 or len(tgl) != 1:
        raise SystemExit(f"x86_emu: expected one call to {CNL_SYM} and one PLT entry of {TGL_SYM} in "
                         f"{so_path}, found {len(calls)} and {len(tgl)}: not the bochscpu build this knows")
    at, target = int(calls[0][0], 16), int(tgl[0], 16)
    off = file_offset(data, at)
    if data[off] != 0xE8:
        raise SystemExit(f"x86_emu: no rel32 call at {at:#x} in {so_path}")
    struct.pack_into("<i", data, off + 1, target - (at + 5))


def import_bochscpu(pkg_parent, model):
    import glob
    import shutil
    import tempfile
    src = os.path.join(pkg_parent, "bochscpu")
    sos = glob.glob(os.path.join(src, "_bochscpu*.so"))
    if not sos:
        raise SystemExit(f"x86_emu: no bochscpu package under {pkg_parent}")
    data = bytearray(open(sos[0], "rb").read())
    if model == "tigerlake":
        retarget_cpu_model(sos[0], data)
    tmp = tempfile.mkdtemp(prefix="x86_emu.")
    dst = os.path.join(tmp, "bochscpu")
    shutil.copytree(src, dst)
    with open(os.path.join(dst, os.path.basename(sos[0])), "wb") as f:
        f.write(data)
    sys.path.insert(0, tmp)
    import bochscpu as mod
    import bochscpu.cpu  # noqa: F401 (every submodule, before the files go)
    import bochscpu.memory  # noqa: F401
    shutil.rmtree(tmp)  # loaded: the mapping outlives the file
    return mod

PAGE = 4096
HUGE = 2 << 20
GB = 1 << 30
# Virtual == physical. 0-4 GiB: the program and its brk; the page tables
# sit at the top of it. Then the stack and the mmap area.
TABLES = 4 * GB - 64 * PAGE
STACK_TOP = 31 * GB
MMAP_BASE = 64 * GB
REGIONS = [(0, 4 * GB), (28 * GB, 32 * GB), (MMAP_BASE, MMAP_BASE + 16 * GB)]

ENOSYS, ENOTTY, ENOMEM, EINVAL = 38, 25, 12, 22

bochscpu = bmem = None  # the patched module, once imported


def back_page(gpa):
    """Bochs asks for a guest physical page nobody has touched: a zero page
    (addresses are never handed out twice, so fresh memory is zero)."""
    bmem.page_insert(gpa & ~(PAGE - 1), bmem.allocate_host_page())


def write_phys(addr, data):
    off = 0
    while off < len(data):
        n = min(len(data) - off, PAGE - ((addr + off) % PAGE))
        bmem.phy_write(addr + off, list(data[off:off + n]))
        off += n


def read_phys(addr, n):
    out = bytearray()
    while n > 0:
        k = min(n, PAGE - (addr % PAGE))
        out += bytes(bmem.phy_read(addr, k))
        addr += k
        n -= k
    return bytes(out)


def build_page_tables():
    """PML4 -> one PDPT -> a PD per GiB used, 2 MiB user RW pages."""
    nxt = [TABLES]

    def table():
        a = nxt[0]
        nxt[0] += PAGE
        return a

    pml4, pdpt = table(), table()
    pdpt_e = bytearray(PAGE)
    for lo, hi in REGIONS:
        for g in range(lo // GB, hi // GB):
            pd = table()
            ents = b"".join(struct.pack("<Q", (g * GB + i * HUGE) | 0x87) for i in range(512))
            write_phys(pd, ents)
            struct.pack_into("<Q", pdpt_e, 8 * g, pd | 0x7)
    write_phys(pdpt, pdpt_e)
    write_phys(pml4, struct.pack("<Q", pdpt | 0x7) + bytes(PAGE - 8))
    return pml4


def load_elf(path):
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or struct.unpack_from("<H", data, 18)[0] != 62:
        raise SystemExit(f"x86_emu: {path} is not an x86-64 ELF")
    e_type, = struct.unpack_from("<H", data, 16)
    if e_type != 2:
        raise SystemExit(f"x86_emu: {path} is not a static non-PIE executable (link with -static -no-pie)")
    entry, phoff = struct.unpack_from("<QQ", data, 24)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    end = 0
    phdr_addr = 0
    for i in range(phnum):
        p_type, _, off, vaddr, _, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD; the rest of memsz is already zero
            write_phys(vaddr, data[off:off + filesz])
            end = max(end, vaddr + memsz)
            if off <= phoff < off + filesz:
                phdr_addr = vaddr + phoff - off
    return entry, phdr_addr, phentsize, phnum, end


def build_stack(argv, phdr, phent, phnum, entry):
    strings = bytearray()
    def put(s):
        off = len(strings)
        strings.extend(s + b"\0")
        return off
    arg_offs = [put(a.encode()) for a in argv]
    env = [b"PATH=/usr/bin", b"VKI_EMU=1"] + [
        f"{k}={v}".encode() for k, v in os.environ.items() if k.startswith("VKI_")]
    env_offs = [put(e) for e in env]
    rand_off = len(strings)
    strings.extend(os.urandom(16))
    plat_off = put(b"x86_64")
    str_base = (STACK_TOP - len(strings) - 64) & ~15
    auxv = [(3, phdr), (4, phent), (5, phnum), (6, PAGE), (9, entry), (16, 0), (26, 0), (17, 100),
            (23, 0), (25, str_base + rand_off), (15, str_base + plat_off), (11, 0), (12, 0), (13, 0), (14, 0),
            (0, 0)]
    words = [len(argv)] + [str_base + o for o in arg_offs] + [0] + [str_base + o for o in env_offs] + [0]
    for k, v in auxv:
        words += [k, v]
    sp = (str_base - 8 * len(words) - 256) & ~15
    write_phys(str_base, strings)
    write_phys(sp, struct.pack(f"<{len(words)}Q", *words))
    return sp


class Kernel:
    def __init__(self, brk):
        self.brk0 = self.brk = (brk + PAGE - 1) & ~(PAGE - 1)
        self.mmap_next = MMAP_BASE
        self.exit_code = None

    def syscall(self, st):
        nr, a = st.rax, (st.rdi, st.rsi, st.rdx, st.r10, st.r8, st.r9)
        if nr == 1:  # write
            return self.syscall_write(a[0], a[1], a[2])
        if nr == 20:  # writev
            fd, iov, cnt = a[0], a[1], a[2]
            total = 0
            for i in range(cnt):
                base, ln = struct.unpack("<QQ", read_phys(iov + 16 * i, 16))
                total += self.syscall_write(fd, base, ln)
            return total
        if nr == 12:  # brk: a query, or a move within the program's area
            if self.brk0 <= a[0] < TABLES:
                self.brk = a[0]
            return self.brk
        if nr == 9:  # mmap: anonymous, at an address of our choosing
            length, flags = a[1], a[3]
            if not flags & 0x20 or flags & 0x10:  # MAP_ANONYMOUS, not MAP_FIXED
                return -ENOSYS
            size = (length + PAGE - 1) & ~(PAGE - 1)
            if self.mmap_next + size > MMAP_BASE + 16 * GB:
                return -ENOMEM
            self.mmap_next += size
            return self.mmap_next - size
        if nr in (11, 10, 28):  # munmap, mprotect, madvise: the pages stay
            return 0
        if nr == 25:  # mremap: let malloc copy instead
            return -ENOMEM
        if nr == 158:  # arch_prctl
            if a[0] == 0x1002:  # ARCH_SET_FS
                fs = st.fs
                fs.base = a[1]
                st.fs = fs
                return 0
            return -EINVAL
        if nr == 228:  # clock_gettime
            t = time.time() if a[0] == 0 else time.monotonic()
            write_phys(a[1], struct.pack("<qq", int(t), int((t % 1) * 1e9)))
            return 0
        if nr == 318:  # getrandom
            write_phys(a[0], os.urandom(a[1]))
            return a[1]
        if nr == 16:  # ioctl: no terminal
            return -ENOTTY
        if nr in (39, 186, 102, 104, 107, 108, 218):  # getpid, gettid, get[e]uid/gid, set_tid_address
            return 1
        if nr in (13, 14, 273, 131):  # rt_sigaction, rt_sigprocmask, set_robust_list, sigaltstack
            return 0
        if nr in (60, 231):  # exit, exit_group
            self.exit_code = a[0] & 0xFF
            return 0
        return -ENOSYS

    def syscall_write(self, fd, buf, n):
        if fd in (1, 2):
            out = sys.stdout if fd == 1 else sys.stderr
            out.buffer.write(read_phys(buf, n))
            out.flush()
            return n
        return -9


def main():
    global bochscpu, bmem
    args = sys.argv[1:]
    model = "tigerlake"
    if len(args) >= 2 and args[0] == "--cpu":
        model, args = args[1], args[2:]
    if len(args) < 3 or args[0] != "--bochscpu" or model not in ("tigerlake", "cannonlake"):
        raise SystemExit(__doc__)
    bochscpu = import_bochscpu(args[1], model)
    import bochscpu.memory as bmem
    prog, argv = args[2], args[2:]
    sess = bochscpu.Session()
    sess.missing_page_handler = back_page
    pml4 = build_page_tables()
    entry, phdr, phent, phnum, end = load_elf(prog)
    sp = build_stack(argv, phdr, phent, phnum, entry)

    st = bochscpu.State()
    st.cr0 = 0x80050033   # PG AM WP NE ET MP PE
    st.cr4 = 0x50620      # OSXSAVE FSGSBASE OSXMMEXCPT OSFXSR PAE
    st.efer = 0x500       # LMA LME; no SCE: syscall raises #UD, served below
    st.xcr0 = 0xE7        # x87 SSE AVX opmask ZMM_Hi256 Hi16_ZMM
    st.cr3 = pml4
    st.mxcsr = 0x1F80
    st.fpcw = 0x37F
    st.rflags = 0x202
    st.rsp = sp
    st.rip = entry
    cs = bochscpu.Segment()
    cs.present, cs.selector, cs.base, cs.limit, cs.attr = True, 0x33, 0, 0xFFFFFFFF, 0x22FB
    ds = bochscpu.Segment()
    ds.present, ds.selector, ds.base, ds.limit, ds.attr = True, 0x2B, 0, 0xFFFFFFFF, 0xCF3
    st.cs = cs
    st.ds = st.ss = st.es = st.fs = st.gs = ds
    sess.cpu.state = st

    kern = Kernel(end)
    fault = []

    def on_exception(s, cpu_id, vector, error_code):
        fault.append((vector, error_code))
        s.stop()

    hook = bochscpu.Hook()
    hook.exception = on_exception
    while kern.exit_code is None:
        fault.clear()
        sess.run([hook])
        st = sess.cpu.state
        if not fault:
            raise SystemExit(f"x86_emu: the CPU stopped at {st.rip:#x} without a fault")
        vector, code = fault[0]
        # Stopped in the exception hook, before delivery: rip is already
        # past the faulting instruction.
        if vector == 6 and read_phys(st.rip - 2, 2) == b"\x0f\x05":
            st.rax = kern.syscall(st) & 0xFFFFFFFFFFFFFFFF
            st.rcx, st.r11 = st.rip, st.rflags  # what the real instruction clobbers
            sess.cpu.state = st
            continue
        names = {0: "divide error", 6: "invalid opcode", 13: "general protection", 14: "page fault",
                 19: "SIMD floating-point exception"}
        sys.stderr.write(f"x86_emu: {names.get(vector, f'exception {vector}')} (code {code:#x}) at rip "
                         f"or just before {st.rip:#x}\n")
        sys.stdout.flush()
        os._exit(128 + 4 if vector == 6 else 128 + 11)
    sys.stdout.flush()
    os._exit(kern.exit_code)


if __name__ == "__main__":
    main()
