/*
 * dispatch.c: which SIMD level this CPU and OS support, and the kernel table
 * for each level. CPUID says what the core can do; XGETBV says whether the
 * OS saves the wide registers on a context switch, without which AVX code
 * corrupts state (xxHash's xxh_x86dispatch.c makes the same check).
 */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define CPU_X86 1
#endif

typedef struct cpu_features {
    bool avx2, avx512, vnni, neon;
} cpu_features;

static cpu_features detect(void)
{
    cpu_features f = {0};
#if defined(CPU_X86)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
    if (!osxsave || !avx) return f;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    bool ymm_ok = (xlo & 0x6) == 0x6;          /* XMM + YMM state        */
    bool zmm_ok = ymm_ok && (xlo & 0xe0) == 0xe0; /* opmask + ZMM_Hi256 + Hi16_ZMM */
    if (__get_cpuid_max(0, NULL) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = b & (1u << 5);
    bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
    f.avx2 = ymm_ok && avx2 && fma && f16c;
    f.avx512 = f.avx2 && zmm_ok && avx512f && avx512dq && avx512bw && avx512vl;
    f.vnni = f.avx512 && (c & (1u << 11));
#elif defined(__aarch64__)
    f.neon = true; /* Advanced SIMD is mandatory on arm64 */
#endif
    return f;
}

static cpu_features features(void)
{
    /* Detection is pure and cheap; racing threads compute the same value. */
    static cpu_features f;
    static bool done;
    if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        f = detect();
        __atomic_store_n(&done, true, __ATOMIC_RELEASE);
    }
    return f;
}

bool cpu_has_vnni(void) { return features().vnni; }

bool cpu_isa_available(cpu_isa isa)
{
    cpu_features f = features();
    switch (isa) {
    case CPU_ISA_SCALAR: return true;
#if defined(CPU_X86)
    case CPU_ISA_AVX2:   return f.avx2;
    case CPU_ISA_AVX512: return f.avx512;
#endif
#if defined(__aarch64__)
    case CPU_ISA_NEON:   return f.neon;
#endif
    default:             return false;
    }
}

cpu_isa cpu_isa_best(void)
{
    for (int i = CPU_ISA_COUNT - 1; i > 0; i--)
        if (cpu_isa_available((cpu_isa)i)) return (cpu_isa)i;
    return CPU_ISA_SCALAR;
}

static const char *const isa_names[CPU_ISA_COUNT] = {"scalar", "avx2", "avx512", "neon"};

const char *cpu_isa_name(cpu_isa isa) { return (unsigned)isa < CPU_ISA_COUNT ? isa_names[isa] : "?"; }

bool cpu_isa_parse(const char *s, cpu_isa *out)
{
    for (int i = 0; i < CPU_ISA_COUNT; i++)
        if (s && strcmp(s, isa_names[i]) == 0) {
            *out = (cpu_isa)i;
            return true;
        }
    return false;
}

const cpu_kernels *cpu_kernels_get(cpu_isa isa)
{
    static cpu_kernels tables[CPU_ISA_COUNT];
    static bool ready[CPU_ISA_COUNT];
    if ((unsigned)isa >= CPU_ISA_COUNT || !cpu_isa_available(isa)) return NULL;
    if (!__atomic_load_n(&ready[isa], __ATOMIC_ACQUIRE)) {
        /* Every table starts as the scalar one, so a level only overrides
         * what it does faster. Racing initialisers write identical bytes. */
        cpu_kernels k;
        memset(&k, 0, sizeof k);
        cpu_kernels_init_scalar(&k);
        switch (isa) {
#if defined(CPU_X86)
        case CPU_ISA_AVX2:
            cpu_kernels_init_avx2(&k);
            cpu_kernels_init_repack_avx2(&k);
            break;
        case CPU_ISA_AVX512:
            cpu_kernels_init_avx2(&k);
            cpu_kernels_init_avx512(&k);
            cpu_kernels_init_repack_avx2(&k); /* without VNNI (the next line sets nothing) */
            cpu_kernels_init_repack_avx512(&k);
            break;
#endif
#if defined(__aarch64__)
        case CPU_ISA_NEON: cpu_kernels_init_neon(&k); break;
#endif
        default: break;
        }
        k.isa = isa;
        k.name = isa_names[isa];
        tables[isa] = k;
        __atomic_store_n(&ready[isa], true, __ATOMIC_RELEASE);
    }
    return &tables[isa];
}
